"""The Chameleon twin: the stateful fake KVM@TACC whose servers and floating IPs are real.

The API is tests/provision/fake_openstack.py's (Keystone, Nova, Neutron, Glance, Blazar with
upstream behaviour), mounted on requests-mock in the test process, so ``provision/lease.py`` runs
its real code against it. What the fake only records, the twin makes real:

- a server create boots a Chameleon-shaped systemd-nspawn host (ansible/testbed, ``--chameleon``):
  its private address, the port's fixed IP on sharednet1, is the only address on its interface;
  user ``cc`` with the key pair's public key and passwordless sudo, root login refused. The server
  stays BUILD until the host has booted (ERROR with a fault if the boot fails);
- a floating IP comes from the test bed's own floating network (a bridge it creates, a /24 it
  checked against the machine's routes); associating it DNATs it to the private address on the
  controller, as Neutron's router does; disassociating or deleting it removes the DNAT;
- deleting a server (or its lease) destroys the host.

No address is used that the test bed did not assign.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
import time
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "provision"))

from fake_openstack import USER_ID, FakeKvmTacc  # noqa: E402


def load_testbed() -> ModuleType:
    spec = importlib.util.spec_from_file_location("testbed", ROOT / "ansible" / "testbed" / "testbed.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("testbed", module)
    spec.loader.exec_module(module)
    return module


class TwinKvmTacc(FakeKvmTacc):
    def __init__(self, tb: Any, testbed: ModuleType, prefix: str = "chi") -> None:
        super().__init__()
        self.tb, self.testbed, self.prefix = tb, testbed, prefix
        self.floating_net = f"{prefix}-public"
        self.server_build_polls = 1  # the boot itself is the wait
        self.key_files: dict[str, Path] = {}  # key pair name -> private key (its .pub beside it)
        self.labs: dict[str, str] = {}  # server id -> lab of its host
        self.boots: dict[str, threading.Thread] = {}
        self.boot_errors: dict[str, str] = {}
        self.teardowns: list[threading.Thread] = []
        self.timings: dict[str, float] = {}
        self.reclaimed = self._reclaim()
        tb.floating.ensure(self.floating_net)

    def _reclaim(self) -> list[str]:
        """Hosts and the floating network a killed run left (its state outlives it, in $GG_CACHE):
        removed first, or the first server create would find its lab taken and go to ERROR."""
        stale = sorted(f.parent.name for f in self.tb.state_root.glob(f"{self.prefix}-*/state.json"))
        for lab in stale:
            self.tb.destroy(lab)
        if self.tb.floating.destroy(self.floating_net):
            stale.append(self.floating_net)
        return stale

    def add_keypair(self, name: str, key_file: Path) -> None:
        """The student's key pair, as imported in the dashboard."""
        public = Path(f"{key_file}.pub").read_text().strip()
        self.keypairs[name] = {
            "name": name,
            "public_key": public,
            "fingerprint": "tw:in",
            "type": "ssh",
            "user_id": USER_ID,
        }
        self.key_files[name] = key_file

    # --- addresses the test bed assigns ---------------------------------------------------------
    def _lab_of(self, server_id: str) -> str:
        if server_id not in self.labs:
            self.labs[server_id] = f"{self.prefix}-{len(self.labs) + 1}"
        return self.labs[server_id]

    def _port_address(self, server_id: str) -> str:
        lab = self._lab_of(server_id)
        _gateway, [address] = self.testbed.host_addresses(self.testbed.derive_subnet(lab), 1)
        return address

    def _fip_address(self) -> str:
        return self.tb.floating.allocate(self.floating_net)

    def _fip_deleted(self, fip: dict[str, Any]) -> None:
        if fip["port_id"]:
            self._bind_fip(fip, None)
        self.tb.floating.release(self.floating_net, fip["floating_ip_address"])

    def _bind_fip(self, fip: dict[str, Any], port_id: str | None) -> None:
        address, old = fip["floating_ip_address"], fip["port_id"]
        if old and old != port_id:
            self.tb.floating.disassociate(self.floating_net, address)
            self._record_floating(self.ports.get(old), "")
        super()._bind_fip(fip, port_id)
        if port_id:
            self.tb.floating.associate(self.floating_net, address, fip["fixed_ip_address"])
            self._record_floating(self.ports[port_id], address)

    def _record_floating(self, port: dict[str, Any] | None, address: str) -> None:
        lab = self.labs.get(port["device_id"]) if port else None
        if lab and self.tb.state_file(lab).exists():
            self.tb.set_floating(lab, f"{lab}-1", address)

    # --- servers are hosts ----------------------------------------------------------------------
    def _create_server(self, req: dict[str, Any]) -> tuple:
        result = super()._create_server(req)
        if result[0] != 202:
            return result
        sid = result[1]["server"]["id"]
        lab, key = self._lab_of(sid), self.key_files[req["key_name"]]

        def boot() -> None:
            t0 = time.monotonic()
            try:
                info = self.tb.create(lab, 1, chameleon=True, public_key=f"{key}.pub", floating=False)
                assert info["hosts"][0]["address"] == self._port_address(sid), info
            except Exception as exc:  # the server goes to ERROR with this fault, as Nova's would
                self.boot_errors[sid] = f"{type(exc).__name__}: {exc}"
            self.timings["boot"] = round(time.monotonic() - t0, 1)

        self.boots[sid] = threading.Thread(target=boot, name=f"boot-{lab}", daemon=True)
        self.boots[sid].start()
        return result

    def _advance_server(self, s: dict[str, Any]) -> None:
        boot = self.boots.get(s["id"])
        if s["status"] == "BUILD" and boot is not None:
            if boot.is_alive():
                return
            if s["id"] in self.boot_errors:
                self.server_fault = {"code": 500, "message": self.boot_errors[s["id"]][:255]}
                self.server_outcome = "ERROR"
        super()._advance_server(s)

    def _remove_server(self, sid: str) -> None:
        super()._remove_server(sid)
        lab = self.labs.get(sid)
        if lab is None:
            return
        boot = self.boots.get(sid)

        def teardown() -> None:
            if boot is not None:
                boot.join()
            self.tb.destroy(lab)

        t = threading.Thread(target=teardown, name=f"destroy-{lab}", daemon=True)
        t.start()
        self.teardowns.append(t)

    # --- the end of a test session ----------------------------------------------------------------
    def wait_teardowns(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        for t in self.teardowns:
            t.join(max(deadline - time.monotonic(), 0))
        alive = [t.name for t in self.teardowns if t.is_alive()]
        assert not alive, f"hosts not destroyed in {timeout:.0f} s: {alive}"

    def close(self) -> None:
        """Remove every host and the floating network, whatever the test left."""
        for t in self.boots.values():
            t.join(600)
        for lab in set(self.labs.values()):
            if self.tb.state_file(lab).exists():
                self.tb.destroy(lab)
        self.tb.floating.destroy(self.floating_net)

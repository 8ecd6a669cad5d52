"""The commands: ``up`` in stage order, read-only ``status``, and ``down``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .compute import ComputeSteps
from .errors import (
    CloudRefused,
    ResourceFailed,
)
from .facts import (
    FLAVOR,
    IMAGE,
    NETWORK,
    PUBLIC_NETWORK,
    SECURITY_GROUPS,
)
from .inventory import InventorySteps, private_address
from .leases import LeaseSteps, lease_usable, usable_note
from .network import NetworkSteps
from .output import parse_blazar_date
from .session import BlazarError
from .steps import State


class Provisioner(LeaseSteps, ComputeSteps, NetworkSteps, InventorySteps):
    """``up``, ``status``, ``extend`` (from LeaseSteps) and ``down`` over the step mixins."""

    # -- up
    def up(self) -> State:
        st = self.state
        net = self.cloud.conn.network
        compute = self.cloud.conn.compute
        self._done("auth")

        # resolve: fail fast naming the missing resource
        image = self._find("image", IMAGE, lambda: self.cloud.conn.image.find_image(IMAGE, ignore_missing=False))
        network = self._find("network", NETWORK, lambda: net.find_network(NETWORK, ignore_missing=False))
        public = self._find("network", PUBLIC_NETWORK, lambda: net.find_network(PUBLIC_NETWORK, ignore_missing=False))
        flavor = self._find("flavor", FLAVOR, lambda: compute.find_flavor(FLAVOR, ignore_missing=False))
        self._ensure_keypair()
        key_file = Path(self.opts.key_file).expanduser()
        if not key_file.is_file():
            self._note(f"private key {key_file} not found; the inventory will point at it anyway")
        leases = self.find_leases()  # read-only; refuses ambiguity before anything is written
        self._done("resolve")

        # Before the lease: a shared project that is out of security groups fails here, not after a
        # lease has started to run down the allocation.
        groups = self._ensure_security_groups()
        self._done("security-groups")

        lease = self._ensure_lease(flavor.id, leases)
        self._done("lease")
        lease = self._wait_lease(lease)
        self._done("lease-active")

        reserved = self._reserved_flavor(lease)
        self._done("reserved-flavor")

        server = self._ensure_server(image.id, network.id, reserved)
        self._done("server")
        server = self._wait_server(server)
        self._done("server-active")

        port = self.server_port(server, network.id)
        if port is None:
            raise ResourceFailed(f"server {server.name} has no port on {NETWORK}; delete it with `down`")
        wanted = [groups[name] for name in SECURITY_GROUPS]
        current = list(port.security_group_ids or [])
        if not set(wanted) <= set(current):
            net.update_port(port, security_group_ids=current + [g for g in wanted if g not in current])
            self._change(f"attached security groups {', '.join(SECURITY_GROUPS)} to {server.name}")
        self._done("attach-groups")

        st.private_address = private_address(port)
        st.floating_ip = self._ensure_floating_ip(port, public.id)
        self._done("floating-ip")

        # The inventory is written only once SSH answers on the floating IP.
        self._wait_ssh(st.floating_ip)
        self._done("ssh")

        if self.write_inventory(st.floating_ip, st.private_address):
            self._change(f"wrote inventory {self.opts.inventory}")
        st.inventory = str(self.opts.inventory)
        self._done("inventory")
        return st

    def status(self) -> dict[str, Any]:
        net = self.cloud.conn.network
        report: dict[str, Any] = {"lease": None, "server": None, "floating_ip": None, "security_groups": {}}
        leases = self.find_leases()
        if leases:
            le = leases[0]
            end = parse_blazar_date(le.get("end_date"))
            left = (end - self.now()).total_seconds() if end else None
            report["lease"] = {
                "id": le["id"],
                "name": le["name"],
                "status": le.get("status"),
                "start": le.get("start_date"),
                "end": le.get("end_date"),
                "seconds_left": int(left) if left is not None else None,
                "degraded": bool(le.get("degraded")),
                "reservations": [
                    {"id": r.get("id"), "type": r.get("resource_type"), "status": r.get("status")}
                    for r in le.get("reservations", [])
                ],
            }
            self.state.lease = le
        servers = self.find_servers()
        address = private = None
        if servers:
            s = servers[0]
            report["server"] = {
                "id": s.id,
                "name": s.name,
                "status": s.status,
                "fault": (s.fault or {}).get("message"),
            }
            ports = list(net.ports(device_id=s.id))
            ips = [(p, ip) for p in ports for ip in net.ips(port_id=p.id)]
            if ips:
                address = ips[0][1].floating_ip_address
                report["private_address"] = private = private_address(ips[0][0])
            attached = {g for p in ports for g in (p.security_group_ids or [])}
        else:
            attached = set()
        report["floating_ip"] = address
        orphans = [ip.floating_ip_address for ip in self.own_floating_ips() if not ip.port_id]
        if orphans:
            report["orphan_floating_ips"] = orphans
        for name in SECURITY_GROUPS:
            groups = self.groups_named(name)
            report["security_groups"][name] = {
                "exists": bool(groups),
                "attached": any(g.id in attached for g in groups),
            }
        inv = self.opts.inventory
        if not inv.exists():
            report["inventory"] = {"path": str(inv), "state": "missing"}
        elif address and inv.read_text() == self.inventory_text(address, private):
            report["inventory"] = {"path": str(inv), "state": "current"}
        else:
            report["inventory"] = {"path": str(inv), "state": "stale"}
        usable = bool(leases) and lease_usable(leases[0])
        if report["lease"]:
            report["lease"]["usable"] = usable
        report["advice"] = self._status_advice(leases[0] if leases else None, servers[0] if servers else None)
        report["ready"] = bool(
            usable
            and report["server"]
            and report["server"]["status"] == "ACTIVE"
            and address
            and all(g["attached"] for g in report["security_groups"].values())
            and report["inventory"]["state"] == "current"
        )
        return report

    def _status_advice(self, lease: dict[str, Any] | None, server: Any | None) -> str | None:
        """What to do or know beyond "run `up`". `down` only when no server runs: it deletes the server."""
        if lease is not None and lease_usable(lease) and lease.get("status") != "ACTIVE":
            return usable_note(lease)
        if lease is not None and not lease_usable(lease) and lease.get("status") not in ("PENDING", "STARTING"):
            if server is not None and server.status == "ACTIVE":
                return self.failed_lease_advice(lease)
            return f"lease {lease.get('name')} is {lease.get('status')}: run `lease.py down`, then `up`."
        return None

    def down(self) -> State:
        from openstack import exceptions as sdk_exc

        net = self.cloud.conn.network
        compute = self.cloud.conn.compute
        leases = self.find_leases()  # ambiguity is refused before anything is deleted
        servers = self.find_servers()
        fips = list(self.own_floating_ips())
        for s in servers:
            for p in net.ports(device_id=s.id):
                fips.extend(ip for ip in net.ips(port_id=p.id) if ip.id not in {f.id for f in fips})
        for s in servers:
            compute.delete_server(s.id, ignore_missing=True)
            self._change(f"deleting server {s.name} ({s.id})")

            def poll(sid: str = s.id) -> tuple[Any, str]:
                try:
                    return None, compute.get_server(sid).status
                except sdk_exc.NotFoundException:
                    return None, "gone"

            self._wait(
                f"server {s.name} deletion",
                poll,
                ok={"gone"},
                failed=set(),
                timeout=self.opts.delete_timeout,
                on_timeout="Re-run `down` to check again.",
            )
        for ip in fips:
            net.delete_ip(ip.id, ignore_missing=True)
            self._change(f"released floating IP {ip.floating_ip_address}")
        for lease in leases:
            try:
                self.cloud.blazar_call("DELETE", f"/leases/{lease['id']}")
                self._change(f"deleted lease {lease['name']} ({lease['id']})")
            except BlazarError as exc:
                if exc.status != 404:
                    raise CloudRefused(f"KVM@TACC refused to delete lease {lease['id']}: {exc.message}") from None
        if self.opts.delete_groups:
            self._delete_groups()
        inv = self.opts.inventory
        if inv.exists():
            inv.unlink()
            self._change(f"removed inventory {inv}")
        return self.state

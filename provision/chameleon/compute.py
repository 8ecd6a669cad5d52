"""Nova: image/flavor/key pair look-ups, the reserved flavor, the server and its wait."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import (
    Ambiguous,
    ConfigError,
    ResourceFailed,
)
from .facts import (
    GONE_SERVER_STATUSES,
    RESERVATION_EXTRA_SPEC,
    TOOL_MARK,
)
from .leases import flavor_reservations
from .output import log
from .steps import Steps


class ComputeSteps(Steps):
    def find_servers(self) -> list[Any]:
        name = self.opts.server_name
        servers = [
            s
            for s in self.cloud.conn.compute.servers(name=f"^{re.escape(name)}$")
            if s.name == name and s.status not in GONE_SERVER_STATUSES
        ]
        if len(servers) > 1:
            listing = ", ".join(f"{s.id} ({s.status})" for s in servers)
            raise Ambiguous(f"{len(servers)} servers are named {name!r}: {listing}. Delete the extra ones.")
        return servers

    def _find(self, kind: str, name: str, call: Callable[[], Any]) -> Any:
        from openstack import exceptions as sdk_exc

        try:
            return call()
        except sdk_exc.NotFoundException:
            raise ConfigError(f"{kind} {name!r} not found on KVM@TACC") from None
        except sdk_exc.DuplicateResource:
            raise Ambiguous(f"several {kind}s are named {name!r} on KVM@TACC") from None

    def _ensure_keypair(self) -> None:
        from openstack import exceptions as sdk_exc

        name = self.opts.key_name
        if not name:
            raise ConfigError("no key pair: pass --key-name NAME (the KVM@TACC key pair for your SSH key)")
        try:
            self.cloud.conn.compute.get_keypair(name)
            return
        except sdk_exc.NotFoundException:
            pass
        if not self.opts.public_key_file:
            raise ConfigError(
                f"key pair {name!r} not found on KVM@TACC; import it on the dashboard or pass "
                "--public-key FILE to import it"
            )
        pub = Path(self.opts.public_key_file).expanduser()
        try:
            public_key = pub.read_text().strip()
        except OSError as exc:
            raise ConfigError(f"cannot read public key {pub}: {exc.strerror}") from None
        self.cloud.conn.compute.create_keypair(name=name, public_key=public_key)
        self._change(f"imported key pair {name} from {pub}")

    def _reserved_flavor(self, lease: dict[str, Any]) -> Any:
        """Blazar's reserved flavor: by id (= the reservation id, upstream's flavor plugin), else the way
        python-chi's ``list_flavors(reservation_id=...)`` finds it, by its extra spec
        ``aggregate_instance_extra_specs:reservation`` (a deployment may give the flavor another id)."""
        from openstack import exceptions as sdk_exc

        rid = flavor_reservations(lease)[0]["id"]
        self.state.reservation_id = rid
        compute = self.cloud.conn.compute
        try:
            return compute.get_flavor(rid)
        except sdk_exc.NotFoundException:
            pass
        matches = [
            f
            for f in compute.flavors(details=True, get_extra_specs=True)
            if (f.extra_specs or {}).get(RESERVATION_EXTRA_SPEC) == rid
        ]
        if len(matches) > 1:
            raise Ambiguous(f"{len(matches)} flavors carry reservation {rid}: {', '.join(f.id for f in matches)}")
        if matches:
            log(f"= reserved flavor {matches[0].name} ({matches[0].id}) found by its extra spec")
            return matches[0]
        raise ResourceFailed(
            f"reserved flavor reservation:{rid} of lease {lease['name']} is not visible to the project "
            f"(neither by id nor by the extra spec {RESERVATION_EXTRA_SPEC}); the lease may still be "
            "starting — re-run `up` in a minute"
        )

    def _ensure_server(self, image_id: str, network_id: str, reserved: Any) -> Any:
        found = self.find_servers()
        if found:
            server = found[0]
            log(f"= server {server.name} ({server.id}) exists: {server.status}")
            flavor_name = getattr(server.flavor, "original_name", None) or getattr(server.flavor, "name", None)
            if flavor_name and flavor_name != reserved.name:
                self._note(
                    f"server {server.name} runs on flavor {flavor_name}, "
                    f"not on this lease's {reserved.name}; "
                    "it dies when its own lease ends"
                )
            return server
        server = self.cloud.conn.compute.create_server(
            name=self.opts.server_name,
            flavor_id=reserved.id,
            image_id=image_id,
            key_name=self.opts.key_name,
            networks=[{"uuid": network_id}],
            metadata={"created_by": TOOL_MARK, "lease_id": (self.state.lease or {}).get("id", "")},
        )
        self._change(f"created server {self.opts.server_name} ({server.id}) on {reserved.name}")
        return server

    def _wait_server(self, server: Any) -> Any:
        compute = self.cloud.conn.compute
        if server.status != "ACTIVE":
            server, _ = self._wait(
                f"server {self.opts.server_name}",
                lambda: (lambda s: (s, s.status))(compute.get_server(server.id)),
                ok={"ACTIVE"},
                failed={"ERROR", *GONE_SERVER_STATUSES},
                timeout=self.opts.server_timeout,
                on_timeout="The server is kept: re-run `up` to keep waiting, or `down` to remove it.",
            )
        self.state.server = {"id": server.id, "name": server.name, "status": server.status}
        if server.status != "ACTIVE":
            fault = server.fault or {}
            reason = fault.get("message") or "no fault recorded"
            raise ResourceFailed(
                f"server {server.name} ({server.id}) is {server.status}: {reason}"
                + (f" (code {fault['code']})" if fault.get("code") else "")
                + ". Run `lease.py down` and then `up` to try again."
            )
        return server

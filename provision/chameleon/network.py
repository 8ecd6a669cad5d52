"""Neutron: security groups and their rules, the server's port, floating IPs."""

from __future__ import annotations

from typing import Any

from .errors import (
    Ambiguous,
    NoFloatingIp,
    QuotaExceeded,
    is_pool_exhausted,
    is_quota,
)
from .facts import (
    NETWORK,
    SECURITY_GROUPS,
    TOOL_MARK,
)
from .steps import Steps


class NetworkSteps(Steps):
    def server_port(self, server: Any, network_id: str) -> Any | None:
        ports = list(self.cloud.conn.network.ports(device_id=server.id, network_id=network_id))
        if len(ports) > 1:
            raise Ambiguous(f"server {server.name} has {len(ports)} ports on {NETWORK}; expected one")
        return ports[0] if ports else None

    def own_floating_ips(self) -> list[Any]:
        """Floating IPs this tool created for this server (recognised by their exact description)."""
        desc = self.opts.fip_description
        return [ip for ip in self.cloud.conn.network.ips(description=desc) if ip.description == desc]

    def groups_named(self, name: str) -> list[Any]:
        return [g for g in self.cloud.conn.network.security_groups(name=name) if g.name == name]

    def _ensure_security_groups(self) -> dict[str, str]:
        from openstack import exceptions as sdk_exc

        net = self.cloud.conn.network
        cidr = self.opts.cidr
        result: dict[str, str] = {}
        for name, port in SECURITY_GROUPS.items():
            groups = self.groups_named(name)
            if not groups:
                try:
                    group = net.create_security_group(name=name, description=f"GourmetGram: tcp/{port} ({TOOL_MARK})")
                except sdk_exc.ConflictException as exc:
                    if is_quota(409, _detail(exc)):
                        raise self._group_quota_error(name, _detail(exc)) from None
                    raise
                self._change(f"created security group {name}")
            elif len(groups) == 1:
                group = groups[0]
            else:
                good = sorted((g for g in groups if _rule_covering(g, port, cidr)), key=lambda g: g.id)
                if not good:
                    listing = ", ".join(sorted(g.id for g in groups))
                    raise Ambiguous(
                        f"{len(groups)} security groups are named {name!r} ({listing}) and none allows "
                        f"tcp/{port}; delete the extras or fix one on the dashboard"
                    )
                group = good[0]
                self._note(f"{len(groups)} groups are named {name}; using {group.id}, which allows tcp/{port}")
            rule = _rule_covering(group, port, cidr)
            if rule is None:
                try:
                    net.create_security_group_rule(
                        security_group_id=group.id,
                        direction="ingress",
                        ether_type="IPv4",
                        protocol="tcp",
                        port_range_min=port,
                        port_range_max=port,
                        remote_ip_prefix=cidr or "0.0.0.0/0",
                    )
                    self._change(f"added rule tcp/{port} from {cidr or '0.0.0.0/0'} to {name}")
                except sdk_exc.ConflictException as exc:
                    if is_quota(409, _detail(exc)):
                        raise QuotaExceeded(
                            f"Neutron refused rule tcp/{port} on {name}: the project's security-group-rule quota "
                            f"is used up ({_detail(exc)}). Delete unused rules or groups of the project, or ask "
                            "the course staff for more quota, then re-run `up`: it keeps what it has made."
                        ) from None
                    # SecurityGroupRuleExists: another run (or a teammate) added it meanwhile
            elif cidr and rule.get("remote_ip_prefix") in (None, "0.0.0.0/0"):
                self._note(f"{name} already allows tcp/{port} from anywhere; --cidr does not narrow shared groups")
            result[name] = group.id
        self.state.security_groups = result
        return result

    def _group_quota_error(self, name: str, detail: str) -> QuotaExceeded:
        """The shared course project hit Neutron's security-group quota (default 10 per project)."""
        net = self.cloud.conn.network
        missing = [n for n in SECURITY_GROUPS if not self.groups_named(n)]
        groups = list(net.security_groups())
        used = {g for p in net.ports() for g in (p.security_group_ids or [])}
        unused = sorted(  # other groups nothing uses: candidates to delete (ours are needed, default stays)
            f"{g.name} ({g.id})" for g in groups if g.id not in used and g.name not in {"default", *SECURITY_GROUPS}
        )
        return QuotaExceeded(
            f"Neutron refused to create security group {name}: the project's security-group quota is used up "
            f"({detail}). The project has {len(groups)} groups (Neutron's default quota is 10 per project, "
            f"shared by everyone in a course project); this lab still needs {len(missing)}: {', '.join(missing)}.\n"
            + (
                f"  Groups no port uses: {', '.join(unused)}. Delete the ones you own (dashboard: Network > "
                "Security Groups), or ask the course staff to raise the project's quota.\n"
                if unused
                else "  Every group is in use; ask the course staff to raise the project's quota.\n"
            )
            + "  `up` stopped before the lease and the server; re-run it when there is room: it keeps the groups "
            "it has made and creates only the missing ones."
        )

    def _ensure_floating_ip(self, port: Any, public_id: str) -> str:
        """Exactly one floating IP on the server's port. Never takes a free IP unless this tool made it for
        this server (exact description match): a teammate's unassociated IP is not ours to take."""
        net = self.cloud.conn.network
        attached = list(net.ips(port_id=port.id))
        if attached:
            if len(attached) > 1:
                self._note(
                    f"{len(attached)} floating IPs on the server's port; using {attached[0].floating_ip_address}"
                )
            return attached[0].floating_ip_address
        for ip in self.own_floating_ips():
            if not ip.port_id:
                net.update_ip(ip, port_id=port.id)
                self._change(f"re-attached this tool's floating IP {ip.floating_ip_address}")
                return ip.floating_ip_address
        from openstack import exceptions as sdk_exc

        try:
            ip = net.create_ip(floating_network_id=public_id, port_id=port.id, description=self.opts.fip_description)
        except sdk_exc.ConflictException as exc:
            kept = (
                f"The server {self.opts.server_name} is ACTIVE and kept (until the lease ends); no inventory was "
                "written. Re-run `up` later: it attaches an IP and finishes."
            )
            if is_pool_exhausted(409, _detail(exc)):
                raise NoFloatingIp(
                    f"KVM@TACC's floating-IP pool `public` has no free address (Neutron: {_detail(exc)}). {kept} "
                    "If your project holds floating IPs that nothing uses (dashboard: Network > Floating IPs), "
                    "releasing them returns addresses to the pool."
                ) from None
            if is_quota(409, _detail(exc)):
                raise QuotaExceeded(
                    f"The project's floating-IP quota is used up (Neutron: {_detail(exc)}). {kept} Release "
                    "floating IPs nothing uses (dashboard: Network > Floating IPs) or ask the course staff."
                ) from None
            raise
        self._change(f"allocated floating IP {ip.floating_ip_address}")
        return ip.floating_ip_address

    def _delete_groups(self) -> None:
        from openstack import exceptions as sdk_exc

        net = self.cloud.conn.network
        used = {g for p in net.ports() for g in (p.security_group_ids or [])}
        for name in SECURITY_GROUPS:
            for g in self.groups_named(name):
                if TOOL_MARK not in (g.description or ""):
                    self._note(f"kept security group {name} ({g.id}): not created by this tool")
                elif g.id in used:
                    self._note(f"kept security group {name} ({g.id}): still used by a port")
                else:
                    try:
                        net.delete_security_group(g.id, ignore_missing=True)
                        self._change(f"deleted security group {name}")
                    except sdk_exc.ConflictException:
                        self._note(f"kept security group {name} ({g.id}): Neutron says it is in use")


def _rule_covering(group: Any, port: int, cidr: str | None) -> dict[str, Any] | None:
    """The ingress IPv4 rule of ``group`` letting tcp/``port`` in from ``cidr`` (or anywhere), if any."""
    for rule in group.security_group_rules or []:
        if rule.get("direction") != "ingress" or rule.get("ethertype", "IPv4") != "IPv4":
            continue
        if rule.get("protocol") not in (None, "tcp", "6"):
            continue
        lo, hi = rule.get("port_range_min"), rule.get("port_range_max")
        if lo is not None and not (lo <= port <= (hi if hi is not None else lo)):
            continue
        prefix = rule.get("remote_ip_prefix")
        if rule.get("remote_group_id") and not prefix:
            continue
        if prefix in (None, "0.0.0.0/0") or prefix == cidr:
            return rule
    return None


def _detail(exc: Exception) -> str:
    return str(getattr(exc, "details", None) or exc).strip().rstrip(".")

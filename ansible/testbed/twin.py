"""Chameleon-shaped parts of the test bed: floating IPs by DNAT, and a cloud-image login.

A KVM@TACC instance has only its private address (sharednet1) on its interface; its floating IP
lives on the Neutron router, which DNATs it to the private address. The test bed does the same on
the controller: a *floating network* is a bridge with no members (``ggfip-<digest>``) that carries
each associated floating IP as a /32, plus an nft table that DNATs the floating IP to the private
address (prerouting for other namespaces, output for the controller itself) and masquerades the
DNATed connections so that replies come back through the same conntrack entry. The floating IPs
come from a /24 in FLOATING_BASE that the test bed derives and checks against existing routes; no
other address is ever used.

The login is that of an Ubuntu cloud image: user ``cc`` with the given key and passwordless sudo,
root login refused by sshd, ``/usr/bin/python3`` present.

Stdlib only; the pure helpers are unit tested, the side effects run in tests/testbed.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

# 10.208.0.0 - 10.215.255.255: next to the labs' private SUBNET_BASE (10.200.0.0/13), disjoint from it.
FLOATING_BASE = ipaddress.IPv4Network("10.208.0.0/13")
FLOATING_OFFSET = 50  # first floating IP is .50 (the bridge itself keeps .1)
CLOUD_USER = "cc"
SSHD_DROPIN = "etc/ssh/sshd_config.d/60-cloudimg-settings.conf"
SUDOERS_DROPIN = "etc/sudoers.d/90-cloud-init-users"


class FloatingError(RuntimeError):
    pass


def _digest(name: str) -> str:
    return hashlib.sha256(f"floating/{name}".encode()).hexdigest()


def floating_subnet(name: str) -> ipaddress.IPv4Network:
    """A /24 inside FLOATING_BASE, stable for a floating network name."""
    n_subnets = FLOATING_BASE.num_addresses // 256
    idx = int(_digest(name)[:8], 16) % n_subnets
    return ipaddress.IPv4Network((int(FLOATING_BASE.network_address) + idx * 256, 24))


def floating_bridge(name: str) -> str:
    return "ggfip-" + _digest(name)[:8]


def floating_table(name: str) -> str:
    return "gg_fip_" + _digest(name)[:8]


def floating_pool(subnet: ipaddress.IPv4Network) -> list[str]:
    return [str(a) for a in list(subnet.hosts())[FLOATING_OFFSET - 1 :]]


def nft_rules(table: str, bindings: dict[str, str]) -> str:
    """The whole nft table for these floating IP -> private address bindings (replaced atomically)."""
    dnat = "".join(f"    ip daddr {fip} dnat to {priv}\n" for fip, priv in sorted(bindings.items()))
    snat = "".join(f"    ct original ip daddr {fip} masquerade\n" for fip in sorted(bindings))
    return (
        f"table ip {table}\n"
        f"delete table ip {table}\n"
        f"table ip {table} {{\n"
        "  chain prerouting {\n    type nat hook prerouting priority dstnat; policy accept;\n"
        f"{dnat}  }}\n"
        "  chain output {\n    type nat hook output priority -100; policy accept;\n"
        f"{dnat}  }}\n"
        "  chain postrouting {\n    type nat hook postrouting priority srcnat; policy accept;\n"
        f"{snat}  }}\n"
        "}\n"
    )


def sshd_dropin() -> str:
    return (
        "# As on an Ubuntu cloud image on Chameleon: keys only, the cloud user, never root.\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin no\n"
    )


def sudoers_dropin(user: str = CLOUD_USER) -> str:
    return f"# Created by the test bed, as cloud-init does\n{user} ALL=(ALL) NOPASSWD:ALL\n"


def root_authorized_key(public_key: str, user: str = CLOUD_USER) -> str:
    """cloud-init's entry for root: the same key, restricted to a message."""
    q = '\\"'
    message = f"echo 'Please login as the user {q}{user}{q} rather than the user {q}root{q}.';echo;sleep 10;exit 142"
    return f'no-port-forwarding,no-agent-forwarding,no-X11-forwarding,command="{message}" {public_key.strip()}\n'


def make_cloud_login(root: Path, public_key: str, user: str = CLOUD_USER) -> None:
    """Inside a prepared host tree: the cloud user with the key, sudo without password, no root login."""
    subprocess.run(
        ["chroot", str(root), "useradd", "--create-home", "--shell", "/bin/bash", "--groups", "sudo", user],
        check=True,
        capture_output=True,
        text=True,
    )
    ssh_dir = root / "home" / user / ".ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    (ssh_dir / "authorized_keys").write_text(public_key if public_key.endswith("\n") else public_key + "\n")
    os.chmod(ssh_dir, 0o700)
    os.chmod(ssh_dir / "authorized_keys", 0o600)
    subprocess.run(["chroot", str(root), "chown", "-R", f"{user}:{user}", f"/home/{user}/.ssh"], check=True)
    sudoers = root / SUDOERS_DROPIN
    sudoers.parent.mkdir(parents=True, exist_ok=True)
    sudoers.write_text(sudoers_dropin(user))
    os.chmod(sudoers, 0o440)
    sshd = root / SSHD_DROPIN
    sshd.parent.mkdir(parents=True, exist_ok=True)
    sshd.write_text(sshd_dropin())
    # root keeps the key, as cloud-init leaves it (with a forced command); sshd refuses root anyway
    (root / "root/.ssh/authorized_keys").write_text(root_authorized_key(public_key, user))
    if not (root / "usr/bin/python3").exists():
        raise FloatingError(f"{root} has no /usr/bin/python3")


# --------------------------------------------------------------------------------------------
# Floating networks (side effects: ip, nft)
# --------------------------------------------------------------------------------------------


@dataclass
class FloatingNet:
    name: str
    subnet: str
    bridge: str
    nft_table: str
    created_bridge: bool = False
    created_nft_table: bool = False
    allocated: list[str] = field(default_factory=list)
    bindings: dict[str, str] = field(default_factory=dict)  # floating IP -> private address


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, text=True, capture_output=True, **kw)


class FloatingNets:
    """Floating networks kept in ``<state_root>/.floating/<name>.json``; only what they created is touched."""

    def __init__(self, state_root: Path, routes_overlapping) -> None:
        self.dir = state_root / ".floating"
        self._routes_overlapping = routes_overlapping

    def _file(self, name: str) -> Path:
        return self.dir / f"{name}.json"

    def load(self, name: str) -> FloatingNet:
        f = self._file(name)
        if not f.exists():
            raise FloatingError(f"no floating network {name!r}")
        return FloatingNet(**json.loads(f.read_text()))

    def _save(self, net: FloatingNet) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self._file(net.name).with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(net), indent=2) + "\n")
        tmp.replace(self._file(net.name))

    def ensure(self, name: str) -> FloatingNet:
        if self._file(name).exists():
            net = self.load(name)
        else:
            subnet = floating_subnet(name)
            net = FloatingNet(name, str(subnet), floating_bridge(name), floating_table(name))
            for f in self.dir.glob("*.json") if self.dir.exists() else []:
                if json.loads(f.read_text())["subnet"] == net.subnet:
                    raise FloatingError(f"floating subnet {subnet} already used by {f.stem}")
            clash = self._routes_overlapping(subnet, net.bridge)
            if clash:
                raise FloatingError(f"floating subnet {subnet} overlaps existing routes {clash}")
            self._save(net)
        if not Path(f"/sys/class/net/{net.bridge}").exists():
            if net.created_bridge:
                raise FloatingError(f"bridge {net.bridge} of floating network {name} vanished")
            _run(["ip", "link", "add", net.bridge, "type", "bridge"])
            net.created_bridge = True
            self._save(net)
            _run(["ip", "link", "set", net.bridge, "addrgenmode", "none"])  # no IPv6 link-local either
            _run(["ip", "link", "set", net.bridge, "up"])
        self._apply(net)
        return net

    def _apply(self, net: FloatingNet) -> None:
        _run(["nft", "-f", "-"], input=nft_rules(net.nft_table, net.bindings))
        net.created_nft_table = True
        self._save(net)

    def allocate(self, name: str) -> str:
        net = self.load(name)
        free = [a for a in floating_pool(ipaddress.IPv4Network(net.subnet)) if a not in net.allocated]
        if not free:
            raise FloatingError(f"floating network {name} has no free address")
        net.allocated.append(free[0])
        self._save(net)
        return free[0]

    def release(self, name: str, fip: str) -> None:
        self.disassociate(name, fip)
        net = self.load(name)
        if fip in net.allocated:
            net.allocated.remove(fip)
        self._save(net)

    def associate(self, name: str, fip: str, private: str) -> None:
        net = self.load(name)
        if fip not in net.allocated:
            raise FloatingError(f"{fip} is not allocated in floating network {name}")
        ipaddress.IPv4Address(private)
        net.bindings[fip] = private
        r = subprocess.run(["ip", "-4", "-o", "addr", "show", "dev", net.bridge], capture_output=True, text=True)
        if f" {fip}/32 " not in r.stdout:
            _run(["ip", "addr", "add", f"{fip}/32", "dev", net.bridge])
        self._apply(net)

    def disassociate(self, name: str, fip: str) -> None:
        net = self.load(name)
        if net.bindings.pop(fip, None) is None:
            return
        subprocess.run(["ip", "addr", "del", f"{fip}/32", "dev", net.bridge], capture_output=True, check=False)
        self._apply(net)

    def destroy(self, name: str) -> bool:
        if not self._file(name).exists():
            return False
        net = self.load(name)
        if net.created_nft_table:
            subprocess.run(["nft", "delete", "table", "ip", net.nft_table], capture_output=True, check=False)
        if net.created_bridge and Path(f"/sys/class/net/{net.bridge}").exists():
            subprocess.run(["ip", "link", "del", net.bridge], capture_output=True, check=False)
        self._file(name).unlink()
        return True

#!/usr/bin/env python3
"""GourmetGram test hosts: Debian 12 systemd machines under systemd-nspawn.

Each *lab* is a set of hosts on its own Linux bridge and /24 subnet with nftables NAT. Every host
boots its own systemd (``systemd-nspawn -b``) in its own network namespace, answers SSH on its own
address (port 22) with a per-lab key, trusts the controller's CA certificates and uses the
controller's resolver.

The tool only ever touches what it created: the bridge, the nft table and the veths it recorded in
the lab's state file, and the nspawn processes whose PID *and* start time it recorded.

    testbed.py create  --lab NAME --hosts N [--names a,b] [--subnet 10.x.y.0/24] [--inventory PATH]
                       [--chameleon [--public-key FILE]]
    testbed.py list
    testbed.py destroy --lab NAME
    testbed.py reboot  --lab NAME --host H
    testbed.py ssh     --lab NAME --host H [-- CMD...]

``--chameleon`` makes Chameleon-shaped hosts (ansible/testbed/twin.py): the private address only on
the interface, a floating IP that reaches the host solely through DNAT on the controller, user
``cc`` with the key and passwordless sudo, root login refused.

Paths: ``$GG_CACHE`` (default /var/cache/gourmetgram) holds ``rootfs/`` (cached base trees keyed by
a hash of the package list), ``apt-archives/``, ``pip/`` and ``artifacts/``; lab state lives in
``$GG_TESTBED_STATE`` (default ``$GG_CACHE/labs``)/<lab>/.

Stdlib only, Python >= 3.11; importable (tests use the pure helpers and the ``Testbed`` class).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import ipaddress
import json
import os
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cgroups
import twin

SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
SECURITY_MIRROR = "http://deb.debian.org/debian-security"
# What every test host has before Ansible touches it (a fresh minimal cloud image has about this).
PACKAGES: tuple[str, ...] = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "python3",
    "python3-apt",
    "openssh-server",
    "iproute2",
    "sudo",
    "ca-certificates",
    "procps",
)
# Subnets are drawn from 10.200.0.0/13 .. i.e. 10.200.0.0 - 10.207.255.255 (2048 /24s).
SUBNET_BASE = ipaddress.IPv4Network("10.200.0.0/13")
HOST_OFFSET = 11  # first guest gets .11, the bridge (gateway) .1
IFNAMSIZ = 15
# Where the shared caches appear inside every host.
GUEST_ARTIFACTS = "/var/cache/gourmetgram/artifacts"
GUEST_PIP_CACHE = "/var/cache/gourmetgram/pip"
GUEST_APT_ARCHIVES = "/var/cache/apt/archives"
# Boot + SSH wait.
BOOT_TIMEOUT = 180.0
STOP_TIMEOUT = 60.0


class TestbedError(RuntimeError):
    pass


# --------------------------------------------------------------------------------------------
# Pure helpers (unit tested)
# --------------------------------------------------------------------------------------------


def lab_digest(lab: str) -> str:
    return hashlib.sha256(lab.encode()).hexdigest()


def validate_lab_name(lab: str) -> str:
    if not lab or len(lab) > 40 or not all(c.isalnum() or c in "-_" for c in lab) or lab[0] in "-_":
        raise TestbedError(f"invalid lab name {lab!r}: use 1-40 chars [A-Za-z0-9_-], not starting with - or _")
    return lab


def derive_subnet(lab: str) -> ipaddress.IPv4Network:
    """A /24 inside SUBNET_BASE, stable for a lab name."""
    n_subnets = SUBNET_BASE.num_addresses // 256
    idx = int(lab_digest(lab)[:8], 16) % n_subnets
    return ipaddress.IPv4Network((int(SUBNET_BASE.network_address) + idx * 256, 24))


def bridge_name(lab: str) -> str:
    name = "ggbr-" + lab_digest(lab)[:8]
    assert len(name) <= IFNAMSIZ
    return name


def nft_table_name(lab: str) -> str:
    return "gg_testbed_" + lab_digest(lab)[:8]


def machine_name(lab: str, host: str) -> str:
    """nspawn machine name; the host side veth is 'vb-' + this, so keep it <= 12 chars and unique."""
    return "gg" + hashlib.sha256(f"{lab}/{host}".encode()).hexdigest()[:10]


def host_names(lab: str, count: int, names: list[str] | None = None) -> list[str]:
    if names:
        if len(names) != count:
            raise TestbedError(f"--names has {len(names)} names but --hosts is {count}")
        out = names
    else:
        out = [f"{lab}-{i}" for i in range(1, count + 1)]
    for n in out:
        if not n or len(n) > 63 or not all(c.isalnum() or c == "-" for c in n) or n[0] == "-":
            raise TestbedError(f"invalid host name {n!r}")
    if len(set(out)) != len(out):
        raise TestbedError("host names must be unique")
    return out


def host_addresses(subnet: ipaddress.IPv4Network, count: int) -> tuple[str, list[str]]:
    """(gateway, [host addresses]) for a /24."""
    hosts = list(subnet.hosts())
    if count < 1 or HOST_OFFSET - 1 + count > len(hosts):
        raise TestbedError(f"cannot place {count} hosts in {subnet}")
    gateway = str(hosts[0])
    return gateway, [str(hosts[HOST_OFFSET - 1 + i]) for i in range(count)]


def packages_digest(packages: tuple[str, ...] = PACKAGES, suite: str = SUITE) -> str:
    key = json.dumps({"suite": suite, "mirror": MIRROR, "packages": sorted(packages), "layout": 2})
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def _yaml_scalar(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return json.dumps(str(value))  # a JSON string is a valid YAML double-quoted scalar


# The sandbox groups: one parent with every component as a child group.
COMPONENT_GROUPS: tuple[str, ...] = ("postgres", "redis", "broker", "minio", "airflow", "app", "ui")


def render_inventory(
    hosts: list[dict],
    key_file: str,
    groups: dict[str, list[str]] | None = None,
    parent: str = "gourmetgram",
    user: str = "root",
) -> str:
    """YAML inventory for a lab.

    ``hosts``: [{"name", "address"[, "private"]}]: ``private`` (default: the address) becomes
    gourmetgram_private_address, omitted when empty (the playbook then takes it from facts, as for
    a Chameleon host behind its floating IP). ``groups``: component group -> host names (default:
    every component on the first host). Host-key checking is switched off here, for these throwaway
    hosts only, not in ansible.cfg.
    """
    if not hosts:
        raise TestbedError("no hosts")
    names = [h["name"] for h in hosts]
    if groups is None:
        groups = {g: [names[0]] for g in COMPONENT_GROUPS}
    for g, members in groups.items():
        unknown = set(members) - set(names)
        if unknown:
            raise TestbedError(f"group {g} names unknown hosts {sorted(unknown)}")
    lines = [
        "# Written by ansible/testbed/testbed.py; regenerate instead of editing.",
        "all:",
        "  vars:",
        f"    ansible_user: {_yaml_scalar(user)}",
        f"    ansible_ssh_private_key_file: {_yaml_scalar(key_file)}",
        "    ansible_ssh_common_args: "
        + _yaml_scalar("-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"),
        f"    ansible_python_interpreter: {_yaml_scalar('/usr/bin/python3')}",
        f"    gourmetgram_testbed: {_yaml_scalar(True)}",
        "  hosts:",
    ]
    for h in hosts:
        lines += [f"    {h['name']}:", f"      ansible_host: {_yaml_scalar(h['address'])}"]
        private = h.get("private", h["address"])
        if private:
            lines.append(f"      gourmetgram_private_address: {_yaml_scalar(private)}")
    lines += ["  children:", f"    {parent}:", "      children:"]
    for g in sorted(groups):
        lines.append(f"        {g}:")
        members = groups[g]
        if members:
            lines.append("          hosts:")
            lines += [f"            {m}: {{}}" for m in members]
        else:
            lines.append("          hosts: {}")
    return "\n".join(lines) + "\n"


def parse_groups(spec: list[str] | None) -> dict[str, list[str]] | None:
    """``--group postgres=h1 --group app=h1,h2`` -> dict; unspecified components go to the first host."""
    if not spec:
        return None
    out: dict[str, list[str]] = {}
    for item in spec:
        if "=" not in item:
            raise TestbedError(f"--group wants NAME=host[,host], got {item!r}")
        g, members = item.split("=", 1)
        out[g.strip()] = [m.strip() for m in members.split(",") if m.strip()]
    return out


def networkd_config(address: str, prefixlen: int, gateway: str, dns: list[str]) -> str:
    lines = ["[Match]", "Name=host0", "", "[Network]", f"Address={address}/{prefixlen}", f"Gateway={gateway}"]
    lines += [f"DNS={d}" for d in dns]
    lines += ["LinkLocalAddressing=no", "IPv6AcceptRA=no", ""]
    return "\n".join(lines)


def resolvers(resolv_conf: str) -> list[str]:
    out = []
    for line in resolv_conf.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "nameserver":
            out.append(parts[1])
    return out


# --------------------------------------------------------------------------------------------
# State
# --------------------------------------------------------------------------------------------


@dataclass
class HostState:
    name: str
    address: str
    machine: str
    root: str
    pid: int = 0
    pid_start: str = ""
    veth: str = ""
    user: str = "root"  # the SSH login (cc on a Chameleon-shaped host, which refuses root)
    floating: str = ""  # its floating IP (reaches it by DNAT), if associated
    key_file: str = ""  # private key for the login (default: the lab's key)


@dataclass
class LabState:
    lab: str
    subnet: str
    gateway: str
    bridge: str
    nft_table: str
    key_file: str
    created_bridge: bool = False
    created_nft_table: bool = False
    hosts: list[HostState] = field(default_factory=list)
    veths: list[str] = field(default_factory=list)
    inventory: str = ""
    groups: dict[str, list[str]] | None = None
    chameleon: bool = False
    floating_net: str = ""  # the floating network this lab created and owns ('' if none)

    @classmethod
    def load(cls, path: Path) -> LabState:
        data = json.loads(path.read_text())
        data["hosts"] = [HostState(**h) for h in data.get("hosts", [])]
        return cls(**data)

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2) + "\n")
        tmp.replace(path)

    def host(self, name: str) -> HostState:
        for h in self.hosts:
            if h.name == name:
                return h
        raise TestbedError(f"lab {self.lab} has no host {name!r} (hosts: {[h.name for h in self.hosts]})")


# --------------------------------------------------------------------------------------------
# Side-effecting parts
# --------------------------------------------------------------------------------------------


def log(msg: str) -> None:
    print(f"[testbed {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run(cmd: list[str], check: bool = True, capture: bool = False, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=check, text=True, capture_output=capture, **kw)


def proc_start_time(pid: int) -> str:
    """Field 22 of /proc/PID/stat ('' if gone or a zombie), to recognise our own processes."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return ""
    rest = raw.rsplit(")", 1)[1].split()
    if rest[0] in ("Z", "X"):
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)
        return ""
    return rest[19]


def alive(pid: int, start: str) -> bool:
    return bool(pid) and bool(start) and proc_start_time(pid) == start


def rooted_in(roots: list[Path]) -> list[int]:
    """Pids of the processes whose root directory is one of roots: a host's processes. nspawn
    pivots into the host's root, so /proc/PID/root names no path here ("/"), but it is the same
    directory: same device and inode."""
    want = set()
    for r in roots:
        with contextlib.suppress(OSError):
            st = os.stat(r)
            want.add((st.st_dev, st.st_ino))
    pids = []
    for proc in Path("/proc").iterdir() if want else ():
        if proc.name.isdigit():
            with contextlib.suppress(OSError):
                st = os.stat(proc / "root")
                if (st.st_dev, st.st_ino) in want:
                    pids.append(int(proc.name))
    return pids


def kill_rooted_in(roots: list[Path]) -> list[int]:
    """SIGKILL a host's processes. Its init is among them, and with it the kernel ends the whole
    PID namespace: a container whose nspawn was killed would otherwise live on, orphaned."""
    pids = rooted_in(roots)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return pids


def remove_tree(path: Path, timeout: float = 30.0) -> None:
    """rmtree a lab's directory, once no process runs in one of its hosts' roots (a host still
    running writes below it while rmtree runs: ENOTEMPTY); tried again until the deadline."""
    roots = [r for r in path.glob("hosts/*/root") if r.is_dir()]
    deadline = time.monotonic() + timeout
    while path.exists():
        kill_rooted_in(roots)
        try:
            shutil.rmtree(path)
        except OSError as exc:
            if time.monotonic() > deadline:
                raise TestbedError(f"cannot remove {path}: {exc}") from exc
            time.sleep(0.5)


def link_exists(name: str) -> bool:
    return Path(f"/sys/class/net/{name}").exists()


def bridge_members(bridge: str) -> list[str]:
    p = Path(f"/sys/class/net/{bridge}/brif")
    return sorted(x.name for x in p.iterdir()) if p.exists() else []


def nft_table_exists(table: str) -> bool:
    r = run(["nft", "list", "table", "ip", table], check=False, capture=True)
    return r.returncode == 0


def routes_overlapping(subnet: ipaddress.IPv4Network, own_bridge: str) -> list[str]:
    r = run(["ip", "-j", "-4", "route", "show", "table", "all"], check=False, capture=True)
    if r.returncode != 0:
        return []
    out = []
    for rt in json.loads(r.stdout or "[]"):
        dst = rt.get("dst", "")
        if dst in ("default", "") or rt.get("dev") == own_bridge or rt.get("type") in ("broadcast", "local"):
            continue
        with contextlib.suppress(ValueError):
            if ipaddress.IPv4Network(dst, strict=False).overlaps(subnet):
                out.append(f"{dst} dev {rt.get('dev')}")
    return out


class Testbed:
    def __init__(self, cache: str | os.PathLike | None = None, state_root: str | os.PathLike | None = None):
        self.cache = Path(cache or os.environ.get("GG_CACHE", "/var/cache/gourmetgram"))
        self.state_root = Path(state_root or os.environ.get("GG_TESTBED_STATE", self.cache / "labs"))
        self.floating = twin.FloatingNets(self.state_root, routes_overlapping)

    # ---- paths
    def lab_dir(self, lab: str) -> Path:
        return self.state_root / validate_lab_name(lab)

    def state_file(self, lab: str) -> Path:
        return self.lab_dir(lab) / "state.json"

    def load(self, lab: str) -> LabState:
        f = self.state_file(lab)
        if not f.exists():
            raise TestbedError(f"no lab {lab!r} (no {f})")
        return LabState.load(f)

    # ---- base rootfs
    def rootfs(self) -> Path:
        """Build (once, under a lock) and return the cached base rootfs."""
        base = self.cache / "rootfs" / f"{SUITE}-{packages_digest()}"
        if (base / ".gg-complete").exists():
            return base
        base.parent.mkdir(parents=True, exist_ok=True)
        with open(base.parent / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if (base / ".gg-complete").exists():
                return base
            if not shutil.which("debootstrap"):
                raise TestbedError("debootstrap missing: apt-get install -y debootstrap systemd-container nftables")
            tmp = base.with_name(base.name + ".tmp")
            if tmp.exists():
                shutil.rmtree(tmp)
            t0 = time.monotonic()
            log(f"building base rootfs {base} (debootstrap {SUITE} minbase)")
            run(
                [
                    "debootstrap",
                    "--variant=minbase",
                    f"--include={','.join(PACKAGES)}",
                    SUITE,
                    str(tmp),
                    MIRROR,
                ],
                stdout=subprocess.DEVNULL,
            )
            self._customise_base(tmp)
            (tmp / ".gg-complete").write_text(json.dumps({"packages": PACKAGES, "built": time.time()}))
            tmp.rename(base)
            log(f"base rootfs ready in {time.monotonic() - t0:.1f} s")
        return base

    @staticmethod
    def _customise_base(r: Path) -> None:
        (r / "etc/apt/sources.list").write_text(
            f"deb {MIRROR} {SUITE} main\n"
            f"deb {MIRROR} {SUITE}-updates main\n"
            f"deb {SECURITY_MIRROR} {SUITE}-security main\n"
        )
        # Keep downloaded packages (the archive dir is an overlay over the shared cache).
        (r / "etc/apt/apt.conf.d/00gg-keep-debs").write_text('Binary::apt::APT::Keep-Downloaded-Packages "true";\n')
        wants = r / "etc/systemd/system"
        for target, unit in (
            ("multi-user.target.wants", "systemd-networkd.service"),
            ("sockets.target.wants", "systemd-networkd.socket"),
            ("multi-user.target.wants", "ssh.service"),
        ):
            d = wants / target
            d.mkdir(parents=True, exist_ok=True)
            link = d / unit
            if not link.is_symlink():
                link.symlink_to(f"/lib/systemd/system/{unit}")
        # Timers that would grab the apt lock in the middle of a converge on a test host.
        for unit in ("apt-daily.timer", "apt-daily-upgrade.timer", "e2scrub_all.timer", "fstrim.timer"):
            link = wants / unit
            if not link.is_symlink():
                link.symlink_to("/dev/null")
        for key in (r / "etc/ssh").glob("ssh_host_*"):
            key.unlink()
        (r / "etc/machine-id").write_text("")
        (r / "etc/hostname").write_text("localhost\n")
        # The apt cache is provided per host; do not ship the debootstrap debs in every copy.
        for deb in (r / "var/cache/apt/archives").glob("*.deb"):
            deb.unlink()

    # ---- network
    def _setup_network(self, st: LabState) -> None:
        subnet = ipaddress.IPv4Network(st.subnet)
        if not link_exists(st.bridge):
            clash = routes_overlapping(subnet, st.bridge)
            if clash:
                raise TestbedError(f"subnet {subnet} overlaps existing routes {clash}; pass --subnet")
            run(["ip", "link", "add", st.bridge, "type", "bridge"])
            st.created_bridge = True
            self._save(st)
            run(["ip", "addr", "add", f"{st.gateway}/{subnet.prefixlen}", "dev", st.bridge])
            run(["ip", "link", "set", st.bridge, "up"])
        elif not st.created_bridge:
            raise TestbedError(f"bridge {st.bridge} exists but was not created by lab {st.lab}")
        Path("/proc/sys/net/ipv4/ip_forward").write_text("1\n")  # global; needed for NAT, never reset
        if not nft_table_exists(st.nft_table):
            rules = (
                f"table ip {st.nft_table} {{\n"
                "  chain postrouting {\n"
                "    type nat hook postrouting priority srcnat; policy accept;\n"
                f"    ip saddr {subnet} ip daddr != {subnet} masquerade\n"
                "  }\n"
                "}\n"
            )
            run(["nft", "-f", "-"], input=rules)
            st.created_nft_table = True
            self._save(st)

    def _teardown_network(self, st: LabState) -> None:
        for veth in st.veths:
            # only if it still hangs on our bridge (nspawn normally removes it on exit)
            if link_exists(veth) and Path(f"/sys/class/net/{veth}/master").resolve().name == st.bridge:
                run(["ip", "link", "del", veth], check=False)
        if st.created_bridge and link_exists(st.bridge):
            leftovers = [m for m in bridge_members(st.bridge) if m not in st.veths]
            if leftovers:
                log(f"bridge {st.bridge} still has foreign members {leftovers}; leaving it")
            else:
                run(["ip", "link", "del", st.bridge], check=False)
        if st.created_nft_table and nft_table_exists(st.nft_table):
            run(["nft", "delete", "table", "ip", st.nft_table], check=False)

    # ---- hosts
    def _prepare_host(self, st: LabState, h: HostState, base: Path) -> None:
        root = Path(h.root)
        if root.exists():
            shutil.rmtree(root)
        root.parent.mkdir(parents=True, exist_ok=True)
        run(["cp", "-a", "--reflink=auto", str(base), str(root)])
        (root / ".gg-complete").unlink(missing_ok=True)
        subnet = ipaddress.IPv4Network(st.subnet)
        resolv = Path("/etc/resolv.conf").read_text()
        (root / "etc/resolv.conf").unlink(missing_ok=True)
        (root / "etc/resolv.conf").write_text(resolv)
        (root / "etc/systemd/network").mkdir(parents=True, exist_ok=True)
        (root / "etc/systemd/network/10-host0.network").write_text(
            networkd_config(h.address, subnet.prefixlen, st.gateway, resolvers(resolv))
        )
        (root / "etc/hostname").write_text(h.name + "\n")
        hosts = root / "etc/hosts"
        hosts.write_text(
            f"127.0.0.1\tlocalhost\n127.0.1.1\t{h.name}\n::1\tlocalhost ip6-localhost ip6-loopback\n"
            + "".join(f"{o.address}\t{o.name}\n" for o in st.hosts if o.name != h.name)
        )
        (root / "etc/machine-id").write_text(secrets.token_hex(16) + "\n")
        run(["ssh-keygen", "-q", "-A", "-f", str(root)], stdout=subprocess.DEVNULL)
        ssh_dir = root / "root/.ssh"
        ssh_dir.mkdir(mode=0o700, exist_ok=True)
        os.chmod(ssh_dir, 0o700)
        pub = Path(st.key_file + ".pub").read_text()
        (ssh_dir / "authorized_keys").write_text(pub)
        os.chmod(ssh_dir / "authorized_keys", 0o600)
        if st.chameleon:
            twin.make_cloud_login(root, Path((h.key_file or st.key_file) + ".pub").read_text())
        # CA certificates of the controller (TLS-intercepting egress) + pip using the system bundle.
        cas = sorted(Path("/usr/local/share/ca-certificates").glob("*.crt"))
        dest = root / "usr/local/share/ca-certificates"
        dest.mkdir(parents=True, exist_ok=True)
        for ca in cas:
            shutil.copy2(ca, dest / ca.name)
        if cas:
            run(["chroot", str(root), "update-ca-certificates"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        (root / "etc/pip.conf").write_text(
            f"[global]\ncert = /etc/ssl/certs/ca-certificates.crt\ncache-dir = {GUEST_PIP_CACHE}\n"
        )
        for d in (GUEST_ARTIFACTS, GUEST_PIP_CACHE):
            (root / d.lstrip("/")).mkdir(parents=True, exist_ok=True)

    def _caches(self) -> dict[str, Path]:
        c = {
            "apt": self.cache / "apt-archives",
            "pip": self.cache / "pip",
            "artifacts": self.cache / "artifacts",
        }
        for p in c.values():
            p.mkdir(parents=True, exist_ok=True)
        (c["apt"] / "partial").mkdir(exist_ok=True)
        os.chmod(c["pip"], 0o1777)
        return c

    def _boot(self, st: LabState, h: HostState) -> None:
        c = self._caches()
        hostdir = Path(h.root).parent
        upper = hostdir / "apt-upper"
        upper.mkdir(exist_ok=True)
        logf = open(hostdir / "console.log", "ab")  # noqa: SIM115 - handed to the child
        before = set(bridge_members(st.bridge))
        cmd = [
            "systemd-nspawn",
            "-q",
            "-D",
            h.root,
            "-b",
            "-M",
            h.machine,
            "--register=no",
            "--keep-unit",
            f"--network-bridge={st.bridge}",
            # shared apt archive: read from the cache, write per host (copied back on destroy) -> no lock fights
            f"--overlay={c['apt']}:{upper}:{GUEST_APT_ARCHIVES}",
            f"--bind={c['pip']}:{GUEST_PIP_CACHE}",
            f"--bind-ro={c['artifacts']}:{GUEST_ARTIFACTS}",
        ]
        # in a cgroup of its own, so that no two guests' systemds manage the same unit cgroups
        cmd = cgroups.launcher(cgroups.prepare(h.machine), cmd)
        p = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True
        )
        logf.close()
        h.pid = p.pid
        h.pid_start = ""
        for _ in range(50):
            h.pid_start = proc_start_time(p.pid)
            if h.pid_start:
                break
            time.sleep(0.05)
        # the host side veth appears on our bridge once nspawn has set up networking
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            new = set(bridge_members(st.bridge)) - before
            if new:
                h.veth = sorted(new)[0]
                if h.veth not in st.veths:
                    st.veths.append(h.veth)
                break
            if p.poll() is not None:
                raise TestbedError(f"nspawn for {h.name} exited rc={p.returncode}; see {hostdir / 'console.log'}")
            time.sleep(0.1)
        self._save(st)

    def ssh_base(self, st: LabState, h: HostState) -> list[str]:
        """ssh argv ending in USER@ADDRESS: the floating IP if the host has one, else its own address."""
        return [
            "ssh",
            "-i",
            h.key_file or st.key_file,
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            "-o",
            "ConnectTimeout=3",
            "-o",
            "BatchMode=yes",
            f"{h.user}@{h.floating or h.address}",
        ]

    def _wait_ready(self, st: LabState, h: HostState, timeout: float = BOOT_TIMEOUT) -> float:
        t0 = time.monotonic()
        state = ""
        while time.monotonic() - t0 < timeout:
            if not alive(h.pid, h.pid_start):
                raise TestbedError(f"{h.name}: nspawn died; see {Path(h.root).parent / 'console.log'}")
            r = run([*self.ssh_base(st, h), "systemctl", "is-system-running"], check=False, capture=True)
            state = r.stdout.strip()
            if state in ("running", "degraded"):
                return time.monotonic() - t0
            time.sleep(0.5)
        raise TestbedError(f"{h.name} not ready after {timeout:.0f} s (last state {state!r})")

    def _stop(self, h: HostState, timeout: float = STOP_TIMEOUT) -> None:
        if not alive(h.pid, h.pid_start):
            return
        # nspawn turns SIGTERM into an orderly poweroff of the booted container (SIGRTMIN+3 to its init)
        os.kill(h.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not alive(h.pid, h.pid_start):
                return
            time.sleep(0.2)
        log(f"{h.name}: no clean poweroff in {timeout:.0f} s, killing its processes and nspawn {h.pid}")
        kill_rooted_in([Path(h.root)])
        if alive(h.pid, h.pid_start):
            os.kill(h.pid, signal.SIGKILL)
        for _ in range(50):
            if not alive(h.pid, h.pid_start):
                return
            time.sleep(0.1)

    def _save(self, st: LabState) -> None:
        st.save(self.state_file(st.lab))

    def _sync_apt_cache(self, h: HostState) -> None:
        upper = Path(h.root).parent / "apt-upper"
        dest = self.cache / "apt-archives"
        if not upper.is_dir():
            return
        for deb in upper.glob("*.deb"):
            target = dest / deb.name
            if not target.exists() and deb.is_file():
                tmp = dest / f".{deb.name}.{os.getpid()}.tmp"
                shutil.copy2(deb, tmp)
                tmp.replace(target)

    # ---- public API
    def create(
        self,
        lab: str,
        count: int,
        names: list[str] | None = None,
        subnet: str | None = None,
        inventory: str | None = None,
        groups: dict[str, list[str]] | None = None,
        chameleon: bool = False,
        public_key: str | None = None,
        floating: bool = True,
    ) -> dict:
        """Create and boot a lab. ``chameleon``: Chameleon-shaped hosts (user cc with ``public_key``,
        default the lab's key; root login refused), each with a floating IP from the lab's own
        floating network unless ``floating`` is false (then whoever plays the cloud associates one)."""
        validate_lab_name(lab)
        if public_key and not (chameleon and public_key.endswith(".pub") and Path(public_key[:-4]).is_file()):
            raise TestbedError("--public-key wants --chameleon and a FILE.pub next to its private key FILE")
        for tool in ("systemd-nspawn", "nft", "ip", "ssh-keygen"):
            if not shutil.which(tool):
                raise TestbedError(f"{tool} missing: apt-get install -y debootstrap systemd-container nftables")
        if self.state_file(lab).exists():
            raise TestbedError(f"lab {lab} exists; destroy it first")
        t_total = time.monotonic()
        net = ipaddress.IPv4Network(subnet) if subnet else derive_subnet(lab)
        if net.prefixlen != 24:
            raise TestbedError("subnet must be a /24")
        for other in self.list_labs():
            if other["subnet"] == str(net):
                raise TestbedError(f"subnet {net} already used by lab {other['lab']}; pass --subnet")
        names = host_names(lab, count, names)
        gateway, addrs = host_addresses(net, count)
        d = self.lab_dir(lab)
        d.mkdir(parents=True, exist_ok=False)
        os.chmod(d, 0o700)
        key = d / "id_ed25519"
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"gourmetgram-testbed-{lab}", "-f", str(key)])
        st = LabState(
            lab=lab,
            subnet=str(net),
            gateway=gateway,
            bridge=bridge_name(lab),
            nft_table=nft_table_name(lab),
            key_file=str(key),
            groups=groups,
            chameleon=chameleon,
            hosts=[
                HostState(
                    name=n,
                    address=a,
                    machine=machine_name(lab, n),
                    root=str(d / "hosts" / n / "root"),
                    user=twin.CLOUD_USER if chameleon else "root",
                    key_file=str(Path(public_key).resolve())[:-4] if public_key else "",
                )
                for n, a in zip(names, addrs, strict=True)
            ],
        )
        self._save(st)
        try:
            t0 = time.monotonic()
            base = self.rootfs()
            t_rootfs = time.monotonic() - t0
            self._setup_network(st)
            if chameleon and floating:
                self._own_floating_ips(st)
            t0 = time.monotonic()
            for h in st.hosts:
                self._prepare_host(st, h, base)
            t_copy = time.monotonic() - t0
            t0 = time.monotonic()
            for h in st.hosts:
                self._boot(st, h)
            boot = {h.name: round(self._wait_ready(st, h), 1) for h in st.hosts}
            t_boot = time.monotonic() - t0
        except BaseException:
            log("create failed; cleaning up what this lab created")
            with contextlib.suppress(Exception):
                self.destroy(lab)
            raise
        if inventory:
            self.write_inventory(lab, inventory)
        out = self.describe(lab)
        out["timings_s"] = {
            "rootfs": round(t_rootfs, 1),
            "copy": round(t_copy, 1),
            "boot_all": round(t_boot, 1),
            "ready_per_host": boot,
            "total": round(time.monotonic() - t_total, 1),
        }
        return out

    def write_inventory(self, lab: str, path: str) -> str:
        st = self.load(lab)
        if st.chameleon:  # as lease.py writes it: the floating IP, cc, and no private address
            hosts = [{"name": h.name, "address": h.floating or h.address, "private": ""} for h in st.hosts]
            key = st.hosts[0].key_file or st.key_file
            text = render_inventory(hosts, key, st.groups, user=twin.CLOUD_USER)
        else:
            text = render_inventory([{"name": h.name, "address": h.address} for h in st.hosts], st.key_file, st.groups)
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
        st.inventory = str(p.resolve())
        self._save(st)
        return str(p)

    def describe(self, lab: str) -> dict:
        st = self.load(lab)
        return {
            "lab": st.lab,
            "subnet": st.subnet,
            "gateway": st.gateway,
            "bridge": st.bridge,
            "key_file": st.key_file,
            "inventory": st.inventory or None,
            "chameleon": st.chameleon,
            "hosts": [
                {
                    "name": h.name,
                    "address": h.address,
                    "floating_ip": h.floating or None,
                    "user": h.user,
                    "running": alive(h.pid, h.pid_start),
                    "root": h.root,
                }
                for h in st.hosts
            ],
        }

    def list_labs(self) -> list[dict]:
        if not self.state_root.exists():
            return []
        out = []
        for f in sorted(self.state_root.glob("*/state.json")):
            with contextlib.suppress(Exception):
                out.append(self.describe(f.parent.name))
        return out

    def destroy(self, lab: str) -> dict:
        d = self.lab_dir(lab)
        if not self.state_file(lab).exists():
            remove_tree(d)
            return {"lab": lab, "destroyed": False}
        st = self.load(lab)
        t0 = time.monotonic()
        for h in st.hosts:
            self._stop(h)
            cgroups.remove_host(h.machine)
        for h in st.hosts:
            with contextlib.suppress(Exception):
                self._sync_apt_cache(h)
        self._teardown_network(st)
        if st.floating_net:
            self.floating.destroy(st.floating_net)
        remove_tree(d)
        return {"lab": lab, "destroyed": True, "seconds": round(time.monotonic() - t0, 1)}

    def reboot(self, lab: str, host: str) -> dict:
        st = self.load(lab)
        h = st.host(host)
        t0 = time.monotonic()
        self._stop(h)
        t_stop = time.monotonic() - t0
        self._boot(st, h)
        ready = self._wait_ready(st, h)
        return {"host": host, "address": h.address, "stop_s": round(t_stop, 1), "ready_s": round(ready, 1)}

    def ssh(self, lab: str, host: str, command: list[str], capture: bool = False) -> subprocess.CompletedProcess:
        """Run a command on a host. One argument is a shell command line; several are an argv."""
        st = self.load(lab)
        h = st.host(host)
        line = command[0] if len(command) == 1 else shlex.join(command)
        if h.user != "root":  # the cloud user's passwordless sudo, as a student would type it
            line = "sudo -n -- sh -c " + shlex.quote(line)
        return run([*self.ssh_base(st, h), "--", line], check=False, capture=capture)

    # ---- floating IPs (Chameleon-shaped labs)
    def _own_floating_ips(self, st: LabState) -> None:
        st.floating_net = st.lab
        self._save(st)
        try:
            self.floating.ensure(st.lab)
            for h in st.hosts:
                h.floating = self.floating.allocate(st.lab)
                self.floating.associate(st.lab, h.floating, h.address)
        except twin.FloatingError as e:
            raise TestbedError(str(e)) from e
        self._save(st)

    def set_floating(self, lab: str, host: str, fip: str) -> None:
        """Record the floating IP a cloud (the served fake) associated with a host ('' when detached),
        so that ssh and the inventory use it."""
        st = self.load(lab)
        st.host(host).floating = fip
        self._save(st)


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="testbed.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--cache", help="cache dir (default $GG_CACHE or /var/cache/gourmetgram)")
    ap.add_argument("--state", help="lab state dir (default $GG_TESTBED_STATE or $GG_CACHE/labs)")
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("create", help="create and boot a lab")
    c.add_argument("--lab", required=True)
    c.add_argument("--hosts", type=int, default=1)
    c.add_argument("--names", help="comma-separated host names (default LAB-1..N)")
    c.add_argument("--subnet", help="explicit /24 (default derived from the lab name)")
    c.add_argument("--inventory", help="also write an Ansible YAML inventory here")
    c.add_argument("--group", action="append", help="component group placement, e.g. postgres=h1 (repeatable)")
    c.add_argument("--chameleon", action="store_true", help="Chameleon-shaped: floating IP by DNAT, user cc, no root")
    c.add_argument("--public-key", help="with --chameleon: cc's key (FILE.pub beside FILE; default the lab's key)")
    sub.add_parser("list", help="list labs")
    sub.add_parser("rootfs", help="build (or find) the cached base rootfs and print its path")
    d = sub.add_parser("destroy", help="power off and remove a lab")
    d.add_argument("--lab", required=True)
    i = sub.add_parser("inventory", help="(re)write the inventory of a lab")
    i.add_argument("--lab", required=True)
    i.add_argument("--output", required=True)
    r = sub.add_parser("reboot", help="power off one host and boot it again from the same dir")
    r.add_argument("--lab", required=True)
    r.add_argument("--host", required=True)
    s = sub.add_parser("ssh", help="ssh into a host (extra args after -- are the command)")
    s.add_argument("--lab", required=True)
    s.add_argument("--host", required=True)
    s.add_argument("command", nargs=argparse.REMAINDER)
    a = ap.parse_args(argv)
    tb = Testbed(a.cache, a.state)
    try:
        if a.cmd == "create":
            names = [n.strip() for n in a.names.split(",")] if a.names else None
            out = tb.create(
                a.lab, a.hosts, names, a.subnet, a.inventory, parse_groups(a.group), a.chameleon, a.public_key
            )
        elif a.cmd == "list":
            out = tb.list_labs()
        elif a.cmd == "rootfs":
            t0 = time.monotonic()
            out = {"rootfs": str(tb.rootfs()), "seconds": round(time.monotonic() - t0, 1)}
        elif a.cmd == "destroy":
            out = tb.destroy(a.lab)
        elif a.cmd == "inventory":
            out = {"inventory": tb.write_inventory(a.lab, a.output)}
        elif a.cmd == "reboot":
            out = tb.reboot(a.lab, a.host)
        elif a.cmd == "ssh":
            cmd = a.command[1:] if a.command[:1] == ["--"] else a.command
            if not cmd:
                st = tb.load(a.lab)
                base = tb.ssh_base(st, st.host(a.host))
                os.execvp("ssh", [*base[:-1], "-t", base[-1]])
            return tb.ssh(a.lab, a.host, cmd).returncode
        else:  # pragma: no cover
            ap.error(a.cmd)
    except (TestbedError, twin.FloatingError) as e:
        print(f"testbed: error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

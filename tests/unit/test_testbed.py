"""Pure parts of ansible/testbed/testbed.py: names, subnets, inventory rendering."""

from __future__ import annotations

import contextlib
import errno
import importlib.util
import ipaddress
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("testbed", ROOT / "ansible/testbed/testbed.py")
testbed = importlib.util.module_from_spec(_spec)
sys.modules["testbed"] = testbed
_spec.loader.exec_module(testbed)


def test_subnet_is_stable_24_inside_base():
    a = testbed.derive_subnet("r-postgresql")
    assert a == testbed.derive_subnet("r-postgresql")
    assert a.prefixlen == 24
    assert a.subnet_of(testbed.SUBNET_BASE)


def test_subnets_differ_between_labs():
    labs = [f"r-lab-{i}" for i in range(40)]
    nets = {testbed.derive_subnet(lab) for lab in labs}
    assert len(nets) >= 38  # hash collisions are possible but rare; create() refuses a clash


def test_interface_and_table_names_fit_and_differ():
    for lab in ("a", "r-kafka", "x" * 40):
        assert len(testbed.bridge_name(lab)) <= testbed.IFNAMSIZ
        assert len("vb-" + testbed.machine_name(lab, "h")) <= testbed.IFNAMSIZ
    assert testbed.bridge_name("r-a") != testbed.bridge_name("r-b")
    assert testbed.nft_table_name("r-a") != testbed.nft_table_name("r-b")
    assert testbed.machine_name("lab1", "h") != testbed.machine_name("lab2", "h")


def test_host_addresses():
    gw, addrs = testbed.host_addresses(ipaddress.IPv4Network("10.201.5.0/24"), 3)
    assert gw == "10.201.5.1"
    assert addrs == ["10.201.5.11", "10.201.5.12", "10.201.5.13"]
    with pytest.raises(testbed.TestbedError):
        testbed.host_addresses(ipaddress.IPv4Network("10.201.5.0/24"), 300)


def test_host_names_and_validation():
    assert testbed.host_names("r-x", 2) == ["r-x-1", "r-x-2"]
    assert testbed.host_names("r-x", 1, ["db"]) == ["db"]
    for bad in (["a", "a"], ["-x", "y"]):
        with pytest.raises(testbed.TestbedError):
            testbed.host_names("r-x", 2, bad)
    for lab in ("", "-x", "a/b", "x" * 41):
        with pytest.raises(testbed.TestbedError):
            testbed.validate_lab_name(lab)


def test_inventory_default_all_components_on_first_host():
    text = testbed.render_inventory(
        [{"name": "h1", "address": "10.201.5.11"}, {"name": "h2", "address": "10.201.5.12"}], "/k/id"
    )
    inv = yaml.safe_load(text)
    hosts = inv["all"]["hosts"]
    assert hosts["h1"]["ansible_host"] == "10.201.5.11"
    assert hosts["h2"]["gourmetgram_private_address"] == "10.201.5.12"
    assert inv["all"]["vars"]["ansible_ssh_private_key_file"] == "/k/id"
    assert "StrictHostKeyChecking=no" in inv["all"]["vars"]["ansible_ssh_common_args"]
    children = inv["all"]["children"]["gourmetgram"]["children"]
    assert set(children) == set(testbed.COMPONENT_GROUPS)
    for g in testbed.COMPONENT_GROUPS:
        assert list(children[g]["hosts"]) == ["h1"]


def test_inventory_explicit_groups():
    groups = testbed.parse_groups(["postgres=db", "app=web,db"])
    text = testbed.render_inventory(
        [{"name": "db", "address": "10.0.0.11"}, {"name": "web", "address": "10.0.0.12"}], "/k", groups
    )
    children = yaml.safe_load(text)["all"]["children"]["gourmetgram"]["children"]
    assert list(children["app"]["hosts"]) == ["web", "db"]
    with pytest.raises(testbed.TestbedError):
        testbed.render_inventory([{"name": "db", "address": "x"}], "/k", {"app": ["nope"]})


def test_networkd_and_resolvers():
    assert testbed.resolvers("# x\nnameserver 10.255.255.53\nsearch x\nnameserver 1.1.1.1\n") == [
        "10.255.255.53",
        "1.1.1.1",
    ]
    conf = testbed.networkd_config("10.201.5.11", 24, "10.201.5.1", ["10.255.255.53"])
    assert "Address=10.201.5.11/24" in conf and "Gateway=10.201.5.1" in conf and "DNS=10.255.255.53" in conf


def test_packages_digest_depends_on_package_list():
    assert testbed.packages_digest(("a", "b")) == testbed.packages_digest(("b", "a"))
    assert testbed.packages_digest(("a",)) != testbed.packages_digest(("a", "b"))


def test_state_roundtrip(tmp_path):
    st = testbed.LabState(
        lab="r-x",
        subnet="10.201.5.0/24",
        gateway="10.201.5.1",
        bridge="ggbr-1",
        nft_table="t",
        key_file="/k",
        hosts=[testbed.HostState(name="h", address="10.201.5.11", machine="m", root="/r", pid=5, pid_start="9")],
    )
    f = tmp_path / "state.json"
    st.save(f)
    assert testbed.LabState.load(f) == st


# --- Chameleon-shaped hosts (ansible/testbed/twin.py)
twin = testbed.twin


def test_floating_subnets_are_disjoint_from_the_private_ones():
    assert not twin.FLOATING_BASE.overlaps(testbed.SUBNET_BASE)
    for name in ("twin-a", "twin-b", "ci"):
        net = twin.floating_subnet(name)
        assert net == twin.floating_subnet(name) and net.prefixlen == 24 and net.subnet_of(twin.FLOATING_BASE)
        pool = twin.floating_pool(net)
        assert pool[0].endswith(f".{twin.FLOATING_OFFSET}") and all(ipaddress.IPv4Address(a) in net for a in pool)
        assert len(twin.floating_bridge(name)) <= testbed.IFNAMSIZ
    assert twin.floating_bridge("twin-a") != twin.floating_bridge("twin-b")


def test_nft_rules_dnat_each_floating_ip_and_masquerade_only_those():
    rules = twin.nft_rules("gg_fip_x", {"10.210.0.51": "10.201.0.12", "10.210.0.50": "10.201.0.11"})
    assert rules.startswith("table ip gg_fip_x\ndelete table ip gg_fip_x\n")  # replaced atomically
    assert rules.count("ip daddr 10.210.0.50 dnat to 10.201.0.11") == 2  # prerouting and output
    assert rules.count("dnat to") == 4
    assert "ct original ip daddr 10.210.0.51 masquerade" in rules and rules.count("masquerade") == 2
    assert "dnat" not in twin.nft_rules("gg_fip_x", {})


def test_cloud_login_settings():
    assert "PermitRootLogin no" in twin.sshd_dropin() and "PasswordAuthentication no" in twin.sshd_dropin()
    assert twin.sudoers_dropin().splitlines()[-1] == "cc ALL=(ALL) NOPASSWD:ALL"
    entry = twin.root_authorized_key("ssh-ed25519 AAAA me")
    assert entry.endswith(" ssh-ed25519 AAAA me\n") and 'command="echo' in entry and "exit 142" in entry


def test_inventory_of_a_chameleon_host_has_no_private_address():
    text = testbed.render_inventory([{"name": "h", "address": "10.210.0.50", "private": ""}], "/k", user="cc")
    host = yaml.safe_load(text)["all"]
    assert host["vars"]["ansible_user"] == "cc"
    assert host["hosts"]["h"] == {"ansible_host": "10.210.0.50"}


def _chrooted_writer(root: Path) -> int:
    """A child process inside root, as a host's processes are, writing files until it is killed."""
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        try:
            os.chroot(root)
            os.chdir("/")
            i = 0
            while True:
                with open(f"/f{i % 50}", "w") as f:
                    f.write("x")
                i += 1
        finally:
            os._exit(1)
    return pid


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="chroot needs root")


def test_rooted_in_finds_processes_by_their_root(tmp_path):
    assert os.getpid() in testbed.rooted_in([Path("/")])
    assert testbed.rooted_in([tmp_path]) == [] and testbed.rooted_in([tmp_path / "gone"]) == []


@needs_root
def test_a_host_still_running_is_killed_and_its_tree_removed(tmp_path):
    """After a poweroff that timed out, the container's init outlived its killed nspawn and kept
    writing below its root: rmtree failed with ENOTEMPTY (the airflow molecule scenario)."""
    root = tmp_path / "lab" / "hosts" / "h1" / "root"
    root.mkdir(parents=True)
    pid = _chrooted_writer(root)
    try:
        deadline = time.monotonic() + 10
        while pid not in testbed.rooted_in([root]):
            assert time.monotonic() < deadline, "the chrooted child is not found by its root"
            time.sleep(0.05)
        testbed.remove_tree(tmp_path / "lab", timeout=10)
        deadline = time.monotonic() + 5
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            assert time.monotonic() < deadline, "the host's process still runs"
            time.sleep(0.05)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        assert not (tmp_path / "lab").exists()
    finally:
        with contextlib.suppress(ProcessLookupError, ChildProcessError):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)


def test_remove_tree_retries_when_a_late_write_lands(tmp_path, monkeypatch):
    """A host's last process may still write below its directory while it is removed (the
    airflow scenario's destroy once failed with ENOTEMPTY on hosts/<host>/root): the removal retries."""
    host = tmp_path / "host"
    (host / "rootfs" / "root").mkdir(parents=True)
    real, calls = shutil.rmtree, []

    def racing_rmtree(path, *a, **kw):
        calls.append(path)
        if len(calls) == 1:  # the late write, then rmtree's own failure on that directory
            (host / "rootfs" / "root" / "late").write_text("x")
            raise OSError(errno.ENOTEMPTY, "Directory not empty", "root")
        real(path, *a, **kw)

    monkeypatch.setattr(testbed.shutil, "rmtree", racing_rmtree)
    testbed.remove_tree(host, timeout=10)
    assert not host.exists() and len(calls) == 2
    testbed.remove_tree(tmp_path / "gone")  # nothing there: nothing to do
    assert len(calls) == 2


def test_remove_tree_gives_up_with_a_clear_error(tmp_path, monkeypatch):
    (tmp_path / "host").mkdir()

    def stuck(path, *a, **kw):
        raise OSError(errno.EBUSY, "Device or resource busy", str(path))

    monkeypatch.setattr(testbed.shutil, "rmtree", stuck)
    with pytest.raises(testbed.TestbedError, match="cannot remove"):
        testbed.remove_tree(tmp_path / "host", timeout=1)


# --- one cgroup tree per host (ansible/testbed/cgroups.py) -----------------------------------
MOUNTINFO = """\
30 24 0:26 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
32 30 0:28 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
33 30 0:29 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
"""


def test_each_host_gets_its_own_cgroup_in_the_hierarchies_systemd_uses():
    cgroups = testbed.cgroups

    roots = cgroups.systemd_hierarchies(MOUNTINFO)
    assert roots == [Path("/sys/fs/cgroup/unified"), Path("/sys/fs/cgroup/systemd")]  # not memory
    assert cgroups.host_cgroups("lab-1", roots) == [r / "gg-testbed" / "lab-1" for r in roots]
    # a pure cgroup2 machine: the one hierarchy
    assert cgroups.systemd_hierarchies("1 0 0:1 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n") == [Path("/sys/fs/cgroup")]


def test_the_launcher_joins_every_cgroup_then_execs_with_the_same_pid(tmp_path):
    cgroups = testbed.cgroups

    procs = [tmp_path / "a" / "cgroup.procs", tmp_path / "b" / "cgroup.procs"]
    for p in procs:
        p.parent.mkdir()
    out = subprocess.run(cgroups.launcher(procs, ["sh", "-c", "echo $$"]), capture_output=True, text=True, check=True)
    assert [p.read_text().strip() for p in procs] == [out.stdout.strip()] * 2

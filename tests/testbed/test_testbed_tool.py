"""A real lab: create two hosts, reach them over SSH, reboot one, destroy, nothing left behind.

Needs root, debootstrap, systemd-container and nftables (apt-get install -y debootstrap
systemd-container nftables). Run: pytest -m testbed tests/testbed/test_testbed_tool.py
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "ansible/testbed/testbed.py"
_spec = importlib.util.spec_from_file_location("testbed", TOOL)
testbed = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("testbed", testbed)
_spec.loader.exec_module(testbed)

pytestmark = pytest.mark.testbed
LAB = "r-tooltest"
RECLAIM_PREFIX = "r-reclaim"


def _links() -> set[str]:
    return {p.name for p in Path("/sys/class/net").iterdir()}


@pytest.fixture
def lab(tmp_path):
    tb = testbed.Testbed()
    tb.destroy(LAB)  # a leftover from an interrupted run
    before = _links()
    inv = tmp_path / "inventory.yml"
    info = tb.create(LAB, 2, inventory=str(inv))
    yield tb, info, inv
    tb.destroy(LAB)
    assert _links() == before, "destroy must remove exactly the links the lab created"


def test_create_ssh_reboot_destroy(lab):
    tb, info, inv = lab
    assert [h["name"] for h in info["hosts"]] == [f"{LAB}-1", f"{LAB}-2"]
    assert inv.exists() and info["hosts"][0]["address"] in inv.read_text()
    st = tb.load(LAB)
    assert testbed.link_exists(st.bridge) and testbed.nft_table_exists(st.nft_table)
    h1, h2 = info["hosts"]
    r = tb.ssh(
        LAB, h1["name"], ["sh", "-c", f"hostname; systemctl is-system-running; getent hosts {h2['name']}"], capture=True
    )
    out = r.stdout.split()
    assert out[0] == h1["name"] and out[1] in ("running", "degraded") and h2["address"] in out
    # the controller's CAs are trusted inside; the shared caches are mounted
    r = tb.ssh(
        LAB,
        h1["name"],
        [
            "sh",
            "-c",
            "ls /usr/local/share/ca-certificates; findmnt -n -o TARGET "
            "/var/cache/apt/archives; findmnt -n -o OPTIONS /var/cache/gourmetgram/artifacts",
        ],
        capture=True,
    )
    assert "/var/cache/apt/archives" in r.stdout and "ro" in r.stdout.split("\n")[-2].split(",")
    # The same unit on both hosts, its main process with a child (as kafka-viewer's launcher has):
    # each guest's systemd owns its own cgroup tree, so stopping the unit on one host kills its
    # whole cgroup there and nothing on the other. (With one tree shared by all guests, the kill
    # failed with EIO and the child lived on, holding its port.)
    probe = "systemd-run --unit=gg-probe --property=KillMode=control-group -- sh -c 'sleep 600 & wait'"
    for h in (h2, h1):  # h2's first: in a shared cgroup, h1's kill met h2's processes first
        assert tb.ssh(LAB, h["name"], [probe], capture=True).returncode == 0
    assert tb.ssh(LAB, h1["name"], ["systemctl stop gg-probe"], capture=True).returncode == 0
    left = tb.ssh(LAB, h1["name"], ["pgrep -x sleep || true"], capture=True).stdout.split()
    assert left == [], f"stopping gg-probe on {h1['name']} left its child running: {left}"
    r = tb.ssh(LAB, h2["name"], ["systemctl is-active gg-probe; pgrep -cx sleep"], capture=True)
    assert r.stdout.split() == ["active", "1"], r.stdout
    # a file written before a reboot survives it
    tb.ssh(LAB, h2["name"], ["sh", "-c", "echo kept > /root/marker"])
    res = tb.reboot(LAB, h2["name"])
    assert res["ready_s"] < testbed.BOOT_TIMEOUT
    r = tb.ssh(LAB, h2["name"], ["cat", "/root/marker"], capture=True)
    assert r.stdout.strip() == "kept"
    # the CLI agrees
    out = subprocess.run([sys.executable, str(TOOL), "list"], capture_output=True, text=True, check=True).stdout
    assert LAB in out


# --- Chameleon-shaped host (ansible/testbed/twin.py) ------------------------------------------
TWIN_LAB = "twin-tooltest"


def _ssh(key: Path, login: str, command: str) -> subprocess.CompletedProcess[str]:
    opts = ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes"]
    return subprocess.run(
        ["ssh", "-i", str(key), *opts, "-o", "ConnectTimeout=5", login, command],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _nft_tables() -> set[str]:
    out = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, check=True).stdout
    return {line.split()[-1] for line in out.splitlines() if line.startswith("table")}


def test_chameleon_host_reached_by_dnat_as_cc(tmp_path):
    tb = testbed.Testbed()
    tb.destroy(TWIN_LAB)
    before, tables_before = _links(), _nft_tables()
    key = tmp_path / "id_student"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    inv = tmp_path / "chameleon.yml"
    info = tb.create(TWIN_LAB, 1, inventory=str(inv), chameleon=True, public_key=f"{key}.pub")
    made, made_tables = _links() - before, _nft_tables() - tables_before
    try:
        (h,) = info["hosts"]
        fip, private = h["floating_ip"], h["address"]
        assert fip and fip != private
        assert testbed.ipaddress.IPv4Address(fip) in testbed.twin.FLOATING_BASE
        # the floating IP sits on the bridge the test bed created on the controller, nowhere else
        net = tb.floating.load(TWIN_LAB)
        ctl = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True, check=True).stdout
        assert [line.split()[1] for line in ctl.splitlines() if f" {fip}/" in line] == [net.bridge]
        # SSH as cc through the floating IP with the given key, passwordless sudo, python3
        r = _ssh(key, f"cc@{fip}", "id -un; sudo -n true && echo sudo-ok; test -x /usr/bin/python3 && echo py-ok")
        assert r.returncode == 0 and r.stdout.split() == ["cc", "sudo-ok", "py-ok"], r.stderr
        # inside, only the private address: the floating IP is on no interface of the host
        r = _ssh(key, f"cc@{fip}", "ip -o addr")
        assert f" {private}/" in r.stdout and fip not in r.stdout, r.stdout
        # root login is refused by sshd although root's authorized_keys holds the same key (as cloud-init does)
        r = _ssh(key, f"cc@{fip}", "sudo -n cat /root/.ssh/authorized_keys")
        assert key.with_suffix(".pub").read_text().split()[1] in r.stdout
        for address in (fip, private):
            r = _ssh(key, f"root@{address}", "true")
            assert r.returncode == 255 and "Permission denied" in r.stderr, (address, r.stderr)
        # the inventory is lease.py's shape: the floating IP, cc, the student's key, no private address
        text = inv.read_text()
        assert f'ansible_host: "{fip}"' in text and 'ansible_user: "cc"' in text and str(key) in text
        assert "gourmetgram_private_address" not in text
        # the tool's own ssh goes through the floating IP as cc and runs the command as root
        assert tb.ssh(TWIN_LAB, h["name"], ["id", "-un"], capture=True).stdout.strip() == "root"
    finally:
        tb.destroy(TWIN_LAB)
    st_bridge, fip_bridge = testbed.bridge_name(TWIN_LAB), testbed.twin.floating_bridge(TWIN_LAB)
    assert {st_bridge, fip_bridge} <= made and len(made_tables) == 2, (made, made_tables)
    # (other sessions' labs may come and go meanwhile: only what this lab made is checked)
    assert not made & _links() and not made_tables & _nft_tables(), "destroy must remove the lab's links and tables"
    assert not (tb.state_root / ".floating" / f"{TWIN_LAB}.json").exists()


def test_twin_cloud_removes_what_a_killed_run_left():
    """A deploy stage killed mid-run leaves its host and floating network behind (their state is in
    $GG_CACHE); the next run's twin removes them before its first server create, which would
    otherwise find its lab taken ("lab chi-1 exists") and put the student's server in ERROR."""
    from tests.chameleon.cloud import TwinKvmTacc

    tb, lab, net = testbed.Testbed(), f"{RECLAIM_PREFIX}-1", f"{RECLAIM_PREFIX}-public"
    tb.destroy(lab)
    tb.floating.destroy(net)
    tb.create(lab, 1, chameleon=True, floating=False)
    tb.floating.ensure(net)
    cloud = TwinKvmTacc(tb, testbed, prefix=RECLAIM_PREFIX)
    try:
        assert cloud.reclaimed == [lab, net]
        assert not tb.state_file(lab).exists() and not testbed.link_exists(testbed.bridge_name(lab))
        assert tb.floating.load(net).allocated == []  # the network is the new run's, fresh
    finally:
        cloud.close()
    assert not (tb.state_root / ".floating" / f"{net}.json").exists()

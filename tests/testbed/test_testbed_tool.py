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
    # a file written before a reboot survives it
    tb.ssh(LAB, h2["name"], ["sh", "-c", "echo kept > /root/marker"])
    res = tb.reboot(LAB, h2["name"])
    assert res["ready_s"] < testbed.BOOT_TIMEOUT
    r = tb.ssh(LAB, h2["name"], ["cat", "/root/marker"], capture=True)
    assert r.stdout.strip() == "kept"
    # the CLI agrees
    out = subprocess.run([sys.executable, str(TOOL), "list"], capture_output=True, text=True, check=True).stdout
    assert LAB in out

"""The capped kernel spec and launcher logic (the real kill under the cap: tests/integration/etl/
test_capped_kernel.py). The cgroup v2 steps are checked against a directory laid out like the
unit's delegated cgroup, since this machine has no cgroup v2 memory controller."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from gourmetgram.common import names
from gourmetgram.tools import capped_kernel


def test_spec_starts_ipykernel_through_the_launcher_with_the_labs_cap(tmp_path: Path) -> None:
    assert capped_kernel.install_spec(tmp_path) is True
    assert capped_kernel.install_spec(tmp_path) is False  # idempotent: the role reports changed once
    spec = json.loads((tmp_path / "kernels" / names.KERNEL_SPEC_NAME / "kernel.json").read_text())
    argv = spec["argv"]
    assert argv[:3] == [sys.executable, "-m", "gourmetgram.tools.capped_kernel"]
    assert argv[argv.index("--limit-mb") + 1] == str(names.KERNEL_MEMORY_LIMIT_MB) == "512"
    assert argv[argv.index("--") + 1 :] == [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]


def test_v2_moves_the_server_to_a_leaf_enables_memory_and_caps_the_kernel(tmp_path: Path, monkeypatch) -> None:
    unit = tmp_path / "system.slice" / "gourmetgram-jupyter.service"
    unit.mkdir(parents=True)
    (tmp_path / "cgroup.controllers").write_text("cpu memory pids\n")
    (unit / "cgroup.controllers").write_text("memory pids\n")
    (unit / "cgroup.subtree_control").write_text("\n")
    (unit / "cgroup.procs").write_text("101\n")  # the jupyter server
    monkeypatch.setattr(capped_kernel, "_own_path", lambda _c: "/system.slice/gourmetgram-jupyter.service")
    monkeypatch.setattr(capped_kernel.os, "getpid", lambda: 202)
    report = capped_kernel.apply_cap(512, root=tmp_path)
    kernel = unit / "kernel-202"
    assert report == f"cgroup-v2 512 MiB ({kernel})"
    assert (unit / "server" / "cgroup.procs").read_text() == "101"
    assert (unit / "cgroup.subtree_control").read_text() == "+memory"
    assert (kernel / "memory.max").read_text() == str(512 * 2**20)
    assert (kernel / "memory.swap.max").read_text() == "0"
    assert (kernel / "cgroup.procs").read_text() == "202"


def test_without_a_writable_cgroup_the_kernel_runs_and_says_why(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(capped_kernel, "_own_path", lambda _c: "/nowhere")
    report = capped_kernel.apply_cap(512, root=tmp_path)  # v1 layout, memory dir missing
    assert report.startswith("none: ") and "not writable" in report

"""One cgroup subtree per test host.

``systemd-nspawn --register=no --keep-unit`` puts the container in a ``payload`` child of the cgroup
that nspawn itself runs in. Started from the same cgroup, every host got the same ``/payload``, so
the guests' systemds shared ``/payload/system.slice/<unit>`` for every unit they have in common: a
guest stopping its ``gourmetgram-kafka-viewer`` found the other guest's processes in "its" cgroup,
failed to kill it ("Input/output error") and left its own child running on the port, and a guest
could kill another's processes of the same unit. Here each host's nspawn starts in
``<hierarchy>/gg-testbed/<machine>`` of every hierarchy systemd uses (cgroup2 and the v1
``name=systemd`` one), so each guest's systemd owns a tree of its own.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

PARENT = "gg-testbed"


def systemd_hierarchies(mountinfo: str | None = None) -> list[Path]:
    """Mount points of the cgroup2 hierarchy and of the v1 ``name=systemd`` one, if mounted."""
    if mountinfo is None:
        mountinfo = Path("/proc/self/mountinfo").read_text()
    found = []
    for line in mountinfo.splitlines():
        fields = line.split()
        sep = fields.index("-")
        fstype, options = fields[sep + 1], fields[sep + 3] if len(fields) > sep + 3 else ""
        if fstype == "cgroup2" or (fstype == "cgroup" and "name=systemd" in options.split(",")):
            found.append(Path(fields[4]))
    return found


def host_cgroups(machine: str, hierarchies: list[Path] | None = None) -> list[Path]:
    """The host's cgroup directory in each hierarchy (not created)."""
    roots = systemd_hierarchies() if hierarchies is None else hierarchies
    return [root / PARENT / machine for root in roots]


def prepare(machine: str) -> list[Path]:
    """Create the host's cgroups (emptied of what an earlier boot left) and return their
    ``cgroup.procs`` files, for the launcher to write its own PID into before it execs nspawn."""
    procs = []
    for d in host_cgroups(machine):
        remove(d)
        d.mkdir(parents=True, exist_ok=True)
        procs.append(d / "cgroup.procs")
    return procs


def launcher(procs: list[Path], argv: list[str]) -> list[str]:
    """``sh -c`` that joins the cgroups and then execs argv (same PID: the one recorded)."""
    joins = "".join(f'echo $$ > "{p}" && ' for p in procs)
    return ["sh", "-c", f'{joins}exec "$@"', "nspawn-launcher", *argv]


def remove(d: Path) -> None:
    """rmdir the host's cgroup tree bottom-up (once no process is left in it; a busy one stays)."""
    if not d.is_dir():
        return
    for path, dirs, _files in os.walk(d, topdown=False):
        for sub in dirs:
            with contextlib.suppress(OSError):
                (Path(path) / sub).rmdir()
    with contextlib.suppress(OSError):
        d.rmdir()


def remove_host(machine: str) -> None:
    for d in host_cgroups(machine):
        remove(d)

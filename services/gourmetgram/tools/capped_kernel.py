"""Run a Jupyter kernel in a memory cgroup (lab step 7b's ``docker run --memory=512m``).

The deployed Jupyter's kernel spec starts every kernel through this launcher::

    python -m gourmetgram.tools.capped_kernel [--limit-mb 512] -- python -m ipykernel_launcher -f {connection_file}

It creates a child cgroup with the limit (no swap), moves itself in and ``exec``s the kernel, so
the kernel — and only the kernel — is OOM-killed when it goes over; Jupyter then reports that the
kernel died and restarts it (a new cgroup). Where the cgroup lives:

* cgroup v2 (Ubuntu 24.04): under the Jupyter unit's own cgroup, delegated to its unprivileged
  user by ``Delegate=yes``. The unit's processes move to a ``server`` child first (v2 allows
  processes only in leaves), ``+memory`` is enabled for the children, then ``kernel-<pid>`` gets
  ``memory.max`` and ``memory.swap.max = 0``.
* cgroup v1 (a writable memory hierarchy, e.g. the controller machine as root): ``gg-kernel-<pid>``
  under the process's memory cgroup with ``memory.limit_in_bytes`` (and ``memsw``).

Where neither is writable (a container with a read-only cgroup tree) the kernel runs uncapped
and says so on stderr. The kernel sees ``GG_KERNEL_MEMORY_CAP`` (e.g. ``cgroup-v2 512 MiB`` or
``none: …``), which the notebooks print.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path

from gourmetgram.common import names

ROOT = Path("/sys/fs/cgroup")
ENV_CAP = "GG_KERNEL_MEMORY_CAP"


def _own_path(controller: str | None) -> str | None:
    """This process's cgroup path: the unified (v2) line for None, else the v1 line of ``controller``."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controller is None and controllers == "":
            return path
        if controller is not None and controller in controllers.split(","):
            return path
    return None


def _cleanup(parent: Path, prefix: str) -> None:
    """Remove empty cgroups of earlier (dead) kernels; populated ones refuse (EBUSY)."""
    for child in parent.glob(f"{prefix}*"):
        with contextlib.suppress(OSError):
            child.rmdir()


def cap_v2(limit: int, root: Path = ROOT) -> Path:
    own = _own_path(None)
    if own is None:
        raise OSError("no cgroup v2 entry in /proc/self/cgroup")
    base = root / own.lstrip("/")
    if base.name == "server":  # a kernel started by a server already moved into its leaf
        base = base.parent
    if "memory" not in (base / "cgroup.controllers").read_text().split():
        raise OSError(f"memory controller not available in {base} (Delegate=yes on the unit?)")
    server = base / "server"
    server.mkdir(exist_ok=True)
    for pid in (base / "cgroup.procs").read_text().split():  # v2: processes only in leaves
        with contextlib.suppress(ProcessLookupError):
            (server / "cgroup.procs").write_text(pid)
    if "memory" not in (base / "cgroup.subtree_control").read_text().split():
        (base / "cgroup.subtree_control").write_text("+memory")
    _cleanup(base, "kernel-")
    cg = base / f"kernel-{os.getpid()}"
    cg.mkdir(exist_ok=True)
    (cg / "memory.max").write_text(str(limit))
    with contextlib.suppress(FileNotFoundError):
        (cg / "memory.swap.max").write_text("0")
    (cg / "cgroup.procs").write_text(str(os.getpid()))
    return cg


def cap_v1(limit: int, root: Path = ROOT) -> Path:
    own = _own_path("memory")
    if own is None:
        raise OSError("no cgroup v1 memory controller for this process")
    parent = root / "memory" / own.lstrip("/")
    if not os.access(parent, os.W_OK):
        raise OSError(f"{parent} is not writable")
    _cleanup(parent, "gg-kernel-")
    cg = parent / f"gg-kernel-{os.getpid()}"
    cg.mkdir(exist_ok=True)
    (cg / "memory.limit_in_bytes").write_text(str(limit))
    swap = cg / "memory.memsw.limit_in_bytes"
    if swap.exists():
        with contextlib.suppress(OSError):  # swap accounting off: the plain limit still holds
            swap.write_text(str(limit))
    (cg / "cgroup.procs").write_text(str(os.getpid()))
    return cg


def apply_cap(limit_mb: int, root: Path = ROOT) -> str:
    """Move this process into a capped cgroup; returns what was done (for GG_KERNEL_MEMORY_CAP)."""
    limit = limit_mb * 2**20
    unified = (root / "cgroup.controllers").exists()
    try:
        cg = cap_v2(limit, root) if unified else cap_v1(limit, root)
    except OSError as exc:
        return f"none: {exc}"
    return f"cgroup-{'v2' if unified else 'v1'} {limit_mb} MiB ({cg})"


def kernel_spec(python: str = sys.executable, limit_mb: int = names.KERNEL_MEMORY_LIMIT_MB) -> dict[str, object]:
    """The kernel.json that starts ipykernel through this launcher."""
    return {
        "argv": [
            *(python, "-m", "gourmetgram.tools.capped_kernel", "--limit-mb", str(limit_mb), "--"),
            *(python, "-m", "ipykernel_launcher", "-f", "{connection_file}"),
        ],
        "display_name": f"Python 3 ({limit_mb} MB memory cap)",
        "language": "python",
        "metadata": {"debugger": True},
    }


def install_spec(data_dir: Path, name: str = names.KERNEL_SPEC_NAME, python: str = sys.executable) -> bool:
    """Write ``<data_dir>/kernels/<name>/kernel.json``; True when it changed."""
    path = data_dir / "kernels" / name / "kernel.json"
    text = json.dumps(kernel_spec(python), indent=1) + "\n"
    if path.exists() and path.read_text() == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return True


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="capped_kernel", description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit-mb", type=int, default=names.KERNEL_MEMORY_LIMIT_MB)
    parser.add_argument("--install-spec", metavar="DATA_DIR", help="write the kernel spec there, print changed/ok")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- the kernel command line")
    args = parser.parse_args(argv)
    if args.install_spec:
        print("changed" if install_spec(Path(args.install_spec)) else "ok")
        return
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no kernel command after --")
    cap = apply_cap(args.limit_mb)
    if cap.startswith("none"):
        print(f"capped_kernel: memory cap NOT enforced ({cap})", file=sys.stderr, flush=True)
    os.environ[ENV_CAP] = cap
    os.execvp(command[0], command)


if __name__ == "__main__":
    main()

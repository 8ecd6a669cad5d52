"""Every role's molecule scenario (converge → idempotence → verify) on a fresh nspawn test host."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = sorted(p.parents[2] for p in (REPO / "roles").glob("*/molecule/default/molecule.yml"))

pytestmark = pytest.mark.testbed


@pytest.mark.parametrize("role_dir", SCENARIOS, ids=[p.name for p in SCENARIOS])
def test_molecule_scenario(role_dir: Path) -> None:
    env = os.environ.copy()
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    env.setdefault("GG_LAB_PREFIX", "m-")
    env.setdefault(
        "ANSIBLE_COLLECTIONS_PATH", f"{os.environ.get('GG_CACHE', '/var/cache/gourmetgram')}/ansible-collections"
    )
    started = time.monotonic()
    proc = subprocess.run(
        [f"{bindir}/molecule", "test"],
        cwd=role_dir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=1800,
        check=False,
    )
    elapsed = time.monotonic() - started
    print(f"molecule test {role_dir.name}: {elapsed:.0f} s, exit {proc.returncode}")
    if proc.returncode != 0:
        pytest.fail(f"molecule test failed for {role_dir.name} after {elapsed:.0f} s:\n{proc.stdout[-6000:]}")
    assert "idempotence" in proc.stdout.lower() or "syntax" in proc.stdout.lower()

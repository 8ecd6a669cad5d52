"""Every role's molecule scenario (converge → idempotence → verify) on a fresh nspawn test host."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# Slowest first (seconds, measured with three scenarios side by side on 2 cores), so that
# `pytest -n N` (tests/run.sh molecule) keeps every worker busy to the end; a new role runs last.
_SECONDS = {
    "gourmetgram_service": 519,
    "airflow": 513,
    "ui_iceberg_browser": 276,
    "ui_redis_browser": 249,
    "ui_kafka_console": 246,
    "kafka": 235,
    "ui_jupyter": 234,
    "ui_adminer": 218,
    "dataset": 178,
    "postgresql": 155,
    "minio": 142,
    "ui_nginx": 82,
    "ui_summary": 44,
    "firewall": 40,
    "redis": 43,
    "redpanda": 4,
}
SCENARIOS = sorted(
    (p.parents[2] for p in (REPO / "roles").glob("*/molecule/default/molecule.yml")),
    key=lambda d: (-_SECONDS.get(d.name, 0), d.name),
)

pytestmark = [pytest.mark.testbed, pytest.mark.timeout(2000)]  # molecule itself is cut at 1800 s


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

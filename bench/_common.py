"""Shared bits for the stream benchmarks: loopback servers' env, group offset control, percentiles."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.integration.stream.helpers import commit_group_at_end  # noqa: E402

__all__ = ["commit_group_at_end"]


def load_infra_env() -> dict[str, str]:
    path = Path(os.environ.get("GG_INFRA_DIR", "/tmp/gg-infra")) / "env"
    if not path.exists():
        raise SystemExit(f"{path} missing: run tests/infra/servers.sh start first")
    env = dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    os.environ.update(env)
    return env


def committed(bootstrap: str, group: str, keys: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    res = c.committed([TopicPartition(t, p) for t, p in keys], timeout=10)
    c.close()
    return {(tp.topic, tp.partition): tp.offset for tp in res}


def percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    if not s:
        return float("nan")
    k = (len(s) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)

"""Lab step 5 on the twin (tests/run.sh chameleon): the generator stopped, a viral burst, the alert
in the consumer's journal and the heuristic moderation decision, as docs/lab.md has them."""

from __future__ import annotations

import re
import time

import pytest

from tests.chameleon.session import TIMINGS, TwinHost
from tests.deployed import wait_for
from tests.guide import section

pytestmark = [pytest.mark.e2e, pytest.mark.testbed, pytest.mark.timeout(900)]


def test_lab_step5_viral_burst_gets_a_decision(chameleon_twin: TwinHost) -> None:
    host = chameleon_twin
    host.ssh(section("5a").command())
    t0 = time.monotonic()
    out = host.ssh(section("5b").command())
    image_id = re.search(r"Simulating viral burst for image: ([0-9a-f-]{36})", out).group(1)  # type: ignore[union-attr]
    # the guide's Adminer query: image_id, inference_mode, probability, recommendation, trigger_type
    [sql] = section("5e").sql()

    def decided() -> list[list[str]]:
        return [row for row in host.psql(sql) if row[0] == image_id]

    [row] = wait_for(decided, 120, f"a moderation decision for {image_id}")
    TIMINGS["step 5 burst to decision"] = round(time.monotonic() - t0, 1)
    assert row[1] == "heuristic" and row[3] in ("REVIEW", "FLAG") and row[4] == "viral", row
    journal = host.ssh(f"journalctl -u gourmetgram-stream-consumer --no-pager -n 400 | grep {image_id[:8]}")
    assert "VIRAL" in journal, journal

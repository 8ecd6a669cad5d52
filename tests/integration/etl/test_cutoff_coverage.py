"""The ETL cutoff never reaches past the events the aggregation has read (lab step 6 with a
toggled or triggered run, whose interval is zero-length and ends at the run time)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gourmetgram.common import names
from gourmetgram.etl import aggregation, moderation

pytestmark = pytest.mark.integration


def test_triggered_interval_covers_until_the_read_and_caps_the_cutoff(etl_settings, iceberg) -> None:
    before = datetime.now(UTC)
    end = aggregation.ceil_bucket(before)  # what the DAG reads for a zero-length interval
    assert end >= before and end - before < timedelta(seconds=names.BATCH_WINDOW_SECONDS)
    aggregation.run_interval(etl_settings, end - timedelta(hours=1), end, iceberg)
    covered = aggregation.covered_until(iceberg)
    assert covered is not None and before <= covered <= datetime.now(UTC)  # the read time, not the bucket end
    later = datetime.now(UTC) + timedelta(minutes=30)
    assert moderation.effective_cutoff(iceberg, later) == covered
    earlier = covered - timedelta(minutes=1)
    assert moderation.effective_cutoff(iceberg, earlier) == earlier

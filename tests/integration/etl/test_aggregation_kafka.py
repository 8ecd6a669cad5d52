"""Events produced into Kafka → aggregation for that interval → window and event rows match the
produced counts; running it twice leaves the same rows."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from gourmetgram.common import names
from gourmetgram.etl import aggregation

from .helpers import comment, flag, produce, view

pytestmark = pytest.mark.integration


def _interval() -> tuple[datetime, datetime]:
    now = aggregation.floor_bucket(datetime.now(UTC))
    return now - timedelta(minutes=60), now + timedelta(minutes=10)


def _rows(iceberg, identifier, start, end, column):
    from gourmetgram.etl.catalog import interval_filter

    frame = iceberg.load_table(identifier).scan(row_filter=interval_filter(column, start, end)).to_pandas()
    return frame.drop(columns=["processed_at"]).sort_values(list(frame.columns[:3])).reset_index(drop=True)


def test_interval_aggregation_matches_and_is_idempotent(etl_settings, iceberg, topics) -> None:
    start, end = _interval()
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    b0 = start + timedelta(minutes=10)  # a clock-aligned bucket
    events = [
        # an out-of-interval event first on every partition: the old reader stopped everything here
        view(a, end + timedelta(minutes=2)),
        *(view(a, b0 + timedelta(seconds=s)) for s in (0, 30, 299)),  # 3 in bucket b0
        *(view(a, b0 + timedelta(minutes=5, seconds=s)) for s in (0, 1)),  # 2 in b0+5
        *(view(b, b0 + timedelta(minutes=20)) for _ in range(4)),
        comment(a, b0 + timedelta(minutes=1)),
        comment(a, b0 + timedelta(minutes=2)),
        flag(b, b0 + timedelta(minutes=21)),
        view(a, start - timedelta(seconds=1)),  # before the interval
        view(b, end),  # the end is exclusive
    ]
    dup = view(b, b0 + timedelta(minutes=40))
    malformed = [(names.TOPIC_VIEWS, b"{not json"), (names.TOPIC_COMMENTS, b'{"event_type": "comment"}')]
    produce(etl_settings.kafka_bootstrap_servers, [*events, dup, dup], raw=malformed)

    first = aggregation.run_interval(etl_settings, start, end, catalog=iceberg)
    stats = first["stats"]
    assert stats["malformed"] >= 2 and stats["duplicates"] >= 1

    views = _rows(iceberg, names.ICEBERG_WINDOW_TABLES[names.TOPIC_VIEWS], start, end, "window_start")
    mine = views[views.image_id.isin([a, b])]
    got = {(r.image_id, r.window_start.to_pydatetime(), r.event_count) for r in mine.itertuples()}
    assert got == {
        (a, b0, 3),
        (a, b0 + timedelta(minutes=5), 2),
        (b, b0 + timedelta(minutes=20), 4),
        (b, b0 + timedelta(minutes=40), 1),  # the duplicated message counted once
    }
    comments = _rows(iceberg, names.ICEBERG_WINDOW_TABLES[names.TOPIC_COMMENTS], start, end, "window_start")
    assert comments[comments.image_id == a].event_count.tolist() == [2]
    flags = _rows(iceberg, names.ICEBERG_WINDOW_TABLES[names.TOPIC_FLAGS], start, end, "window_start")
    assert flags[flags.image_id == b].event_count.tolist() == [1]

    ev = _rows(iceberg, names.ICEBERG_EVENTS, start, end, "event_time")
    counts = Counter((r.image_id, r.event_type) for r in ev.itertuples() if r.image_id in (a, b))
    assert counts == {(a, "view"): 5, (b, "view"): 5, (a, "comment"): 2, (b, "flag"): 1}
    assert ev["event_time"].min() >= pd.Timestamp(start) and ev["event_time"].max() < pd.Timestamp(end)

    # run again (a retry / backfill of the same interval): same rows, no duplicates
    snapshot = {i: _rows(iceberg, i, start, end, c) for i, c in _tables()}
    aggregation.run_interval(etl_settings, start, end, catalog=iceberg)
    for identifier, column in _tables():
        pd.testing.assert_frame_equal(snapshot[identifier], _rows(iceberg, identifier, start, end, column))


def _tables():
    yield names.ICEBERG_EVENTS, "event_time"
    for identifier in names.ICEBERG_WINDOW_TABLES.values():
        yield identifier, "window_start"

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from gourmetgram.etl import aggregation, catalog

T = datetime(2025, 3, 7, 10, 0, tzinfo=UTC)


def test_aligned_interval_floors_to_five_minutes() -> None:
    s, e = aggregation.aligned_interval(T + timedelta(minutes=7, seconds=3), T + timedelta(hours=1, minutes=9))
    assert (s, e) == (T + timedelta(minutes=5), T + timedelta(hours=1, minutes=5))
    with pytest.raises(ValueError):
        aggregation.aligned_interval(T.replace(tzinfo=None), T)


def test_window_frame_counts_per_bucket() -> None:
    events = pd.DataFrame(
        [
            ("e1", "view", "img", T),
            ("e2", "view", "img", T + timedelta(minutes=4, seconds=59)),
            ("e3", "view", "img", T + timedelta(minutes=5)),
            ("e4", "comment", "img", T + timedelta(minutes=1)),
            ("e5", "view", "other", T + timedelta(minutes=59)),
        ],
        columns=list(aggregation.EVENT_COLUMNS),
    )
    events["event_time"] = pd.to_datetime(events["event_time"], utc=True).dt.as_unit("us")
    w = aggregation.window_frame(events, "view", T)
    got = {(r.image_id, r.window_start.to_pydatetime(), r.event_count) for r in w.itertuples()}
    assert got == {("img", T, 2), ("img", T + timedelta(minutes=5), 1), ("other", T + timedelta(minutes=55), 1)}
    assert (w["window_end"] - w["window_start"] == timedelta(minutes=5)).all()
    arrow = catalog.to_arrow(w, catalog.WINDOW_SCHEMA)
    assert str(arrow.schema.field("window_start").type) == "timestamp[us, tz=UTC]"
    empty = aggregation.window_frame(events, "flag", T)
    assert catalog.to_arrow(empty, catalog.WINDOW_SCHEMA).num_rows == 0


def test_to_arrow_casts_nanoseconds_to_micro() -> None:
    frame = pd.DataFrame(
        {
            "event_id": ["a"],
            "event_type": ["view"],
            "image_id": ["i"],
            "event_time": pd.to_datetime(["2025-03-07T10:00:00.123456789Z"]).as_unit("ns"),
            "processed_at": [T],
        }
    )
    arrow = catalog.to_arrow(frame, catalog.EVENTS_SCHEMA)
    assert arrow.schema.field("event_time").type.unit == "us"

"""The batch feature path without servers: closed windows, cutoffs, labels, horizons."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from gourmetgram.common import features, names
from gourmetgram.etl import moderation

T0 = datetime(2025, 3, 7, 12, 0, tzinfo=UTC)  # a Friday


def test_closed_window_counts_match_count_in_window() -> None:
    rng = np.random.default_rng(7)
    keys = rng.choice(["a", "b", "c"], 500)
    ts = rng.integers(0, 4000, 500) * 1_000_000  # whole seconds, many ties
    qk = rng.choice(["a", "b", "c", "d"], 200)
    qt = rng.integers(0, 4000, 200) * 1_000_000
    for window in (300, 3600):
        got = moderation.closed_window_counts(keys, ts, qk, qt, window * 1_000_000)
        for k, t, g in zip(qk, qt, got, strict=True):
            epochs = sorted(ts[keys == k] / 1e6)
            assert g == features.count_in_window(epochs, t / 1e6, window)
    all_before = moderation.closed_window_counts(keys, ts, qk, qt, None)
    for k, t, g in zip(qk, qt, all_before, strict=True):
        assert g == int(((keys == k) & (ts <= t)).sum())


def _history():
    u1, u2 = str(uuid.uuid4()), str(uuid.uuid4())
    users = pd.DataFrame({"id": [u1, u2], "created_at": [T0 - timedelta(days=10, hours=1), T0 - timedelta(hours=2)]})
    a, b, c, young = (str(uuid.uuid4()) for _ in range(4))
    images = pd.DataFrame(
        {
            "id": [a, b, c, young],
            "user_id": [u1, u1, u2, u2],
            "caption": ["tasty noodles", None, "", "x"],
            "category": ["Noodles/Pasta", "class_02", None, "Soup"],
            "uploaded_at": [T0, T0 + timedelta(minutes=2), T0 + timedelta(minutes=10), T0 + timedelta(hours=30)],
        }
    )
    flags = pd.DataFrame(
        {
            "id": ["f1", "f2", "f3"],
            "image_id": [a, c, None],
            # a: flagged 3 h after upload (in horizon); c: flagged 25 h after (outside 24 h)
            "created_at": [T0 + timedelta(hours=3), T0 + timedelta(minutes=10, hours=25), T0],
        }
    )
    ev = []
    # image a: a view exactly at upload, one at +4 min, one at +5 min (on the 5-min boundary of
    # t=+5), one at +31 min (after the last decision point: must never count)
    for i, dt in enumerate([0, 240, 300, 31 * 60]):
        ev.append((f"va{i}", "view", a, T0 + timedelta(seconds=dt)))
    ev.append(("ca0", "comment", a, T0 + timedelta(minutes=1)))
    ev.append(("vb0", "view", b, T0 + timedelta(minutes=2, seconds=1)))
    events = pd.DataFrame(ev, columns=["event_id", "event_type", "image_id", "event_time"])
    events["event_time"] = pd.to_datetime(events["event_time"], utc=True)
    return users, images, flags, events, (a, b, c, young)


def test_training_rows_hand_checked() -> None:
    users, images, flags, events, (a, b, c, young) = _history()
    cutoff = T0 + timedelta(days=2)
    rows = moderation.build_training_rows(users, images, flags, events, cutoff, timedelta(hours=24))
    assert young not in set(rows["image_id"])  # 30 h old upload + 24 h horizon > cutoff: left out
    by = {(r.image_id, r.decision_point_minutes): r for r in rows.itertuples()}
    assert len(rows) == 9
    r0, r5, r30 = by[(a, 0)], by[(a, 5)], by[(a, 30)]
    assert (r0.views_5min, r0.views_1hr, r0.comments_1hr) == (1, 1, 0)
    # closed [t-300, t]: views at 0, 240 and 300 s all count at t = 300
    assert (r5.views_5min, r5.views_1hr, r5.comments_5min, r5.comments_1hr) == (3, 3, 1, 1)
    assert (r30.views_5min, r30.views_1hr) == (0, 3)
    assert r5.time_since_upload_seconds == 300 and r30.time_since_upload_seconds == 1800
    assert r5.view_velocity_per_min == pytest.approx(0.6)
    assert r5.recent_engagement_score == pytest.approx(3 + 5 * 1)
    assert r5.comment_to_view_ratio == pytest.approx(1 / 3)
    assert (r0.hour_of_day, r0.day_of_week, r0.is_weekend) == (12, 4, 0)
    assert (r0.caption_length, r0.has_caption, r0.category) == (13, 1, "Noodles/Pasta")
    assert r0.user_age_days == 10
    # user u1 uploads a at T0 and b at T0+2min: count at t includes only uploads <= t
    assert by[(a, 0)].user_image_count == 1 and by[(a, 5)].user_image_count == 2
    assert by[(b, 0)].category == "Dessert" and by[(b, 0)].caption_length == 0 and by[(b, 0)].has_caption == 0
    assert by[(b, 0)].views_5min == 0 and by[(b, 5)].views_5min == 1
    assert by[(c, 0)].category == names.UNKNOWN_CATEGORY
    labels = {img: int(rows[rows.image_id == img][names.LABEL_COLUMN].iloc[0]) for img in (a, b, c)}
    assert labels == {a: 1, b: 0, c: 0}


def test_decision_points_after_cutoff_and_short_horizon() -> None:
    users, images, flags, events, (a, b, _c, _young) = _history()
    # Horizon 6 min, cutoff T0 + 12 min: a (T0) and b (T0+2) are old enough, c (T0+10) is not;
    # only decision points <= cutoff appear (0 and 5 min), and a's flag at +3 h is not in 6 min.
    rows = moderation.build_training_rows(
        users, images, flags, events, T0 + timedelta(minutes=12), timedelta(minutes=6)
    )
    assert sorted(zip(rows.image_id, rows.decision_point_minutes, strict=True)) == sorted(
        [(a, 0), (a, 5), (b, 0), (b, 5)]
    )
    assert rows[names.LABEL_COLUMN].tolist() == [0, 0, 0, 0]
    assert (rows["decision_time"] <= T0 + timedelta(minutes=12)).all()


def test_no_eligible_images_gives_empty_frame() -> None:
    users, images, flags, events, _ = _history()
    rows = moderation.build_training_rows(users, images, flags, events, T0, timedelta(hours=24))
    assert rows.empty

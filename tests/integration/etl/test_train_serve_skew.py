"""No train/serve skew: the same event history, once as the batch ETL sees it (event rows →
moderation.build_training_rows) and once through Redis sorted sets in the lab layout (ZADD
image:<id>:views / :comments, score = epoch seconds, member = event_id; ZCOUNT [t-W, t] as the
inference service reads them), gives identical 26-vectors at every decision time."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from gourmetgram.common import features, names
from gourmetgram.etl import moderation

pytestmark = pytest.mark.integration

UPLOAD = datetime(2025, 3, 8, 21, 17, 30, tzinfo=UTC)  # a Saturday evening


def _vector_from_row(row: pd.Series) -> np.ndarray:
    numeric = [float(row[n]) for n in features.FEATURE_NAMES if n not in features.CATEGORY_FEATURES]
    one_hot = [1.0 if row["category"] == cls else 0.0 for cls in names.FOOD11_CLASSES]
    return np.array(numeric + one_hot)


def test_batch_and_redis_paths_give_identical_vectors(redis_client) -> None:
    r = redis_client
    rng = np.random.default_rng(11)
    image, user = str(uuid.uuid4()), str(uuid.uuid4())
    user_created = UPLOAD - timedelta(days=40, minutes=5)
    # 40 views and 7 comments around the upload, whole seconds, incl. exact window boundaries
    view_s = sorted({*rng.integers(-600, 2400, 36).tolist(), 0, 300, 1500, 1800})
    while len(view_s) < 40:
        view_s.append(int(rng.integers(2400, 4000)))
    comment_s = [-30, 5, 240, 299, 300, 1790, 3000]
    events = [(str(uuid.uuid4()), "view", image, UPLOAD + timedelta(seconds=s)) for s in view_s[:40]]
    events += [(str(uuid.uuid4()), "comment", image, UPLOAD + timedelta(seconds=s)) for s in comment_s]
    frame = pd.DataFrame(events, columns=["event_id", "event_type", "image_id", "event_time"])
    frame["event_time"] = pd.to_datetime(frame["event_time"], utc=True)

    users = pd.DataFrame({"id": [user], "created_at": [user_created]})
    other = str(uuid.uuid4())
    images = pd.DataFrame(
        {
            "id": [image, other],
            "user_id": [user, user],
            "caption": ["Spicy ramen at midnight", None],
            "category": ["Noodles/Pasta", "Rice"],
            "uploaded_at": [UPLOAD, UPLOAD + timedelta(minutes=4)],
        }
    )
    flags = pd.DataFrame({"id": [], "image_id": [], "created_at": pd.to_datetime([], utc=True)})
    cutoff = UPLOAD + timedelta(days=2)
    batch = moderation.build_training_rows(users, images, flags, frame, cutoff, timedelta(hours=24))
    batch = batch[batch.image_id == image].set_index("decision_point_minutes")

    keys = {"view": names.key_views(image), "comment": names.key_comments(image)}
    try:
        r.delete(*keys.values())
        for event_id, etype, _img, ts in events:
            r.zadd(keys[etype], {event_id: ts.timestamp()})
            r.zadd(keys[etype], {event_id: ts.timestamp()})  # a replay is idempotent (member = event_id)
        for m in names.DECISION_POINTS_MINUTES:
            t = UPLOAD + timedelta(minutes=m)
            now = t.timestamp()

            def zcount(kind: str, window: int, now: float = now) -> int:
                return int(r.zcount(keys[kind], now - window, now))

            serving = features.feature_vector(
                features.FeatureInputs(
                    uploaded_at=UPLOAD,
                    decision_time=t,
                    views_5min=zcount("view", names.WINDOW_5MIN),
                    views_1hr=zcount("view", names.WINDOW_1HR),
                    comments_5min=zcount("comment", names.WINDOW_5MIN),
                    comments_1hr=zcount("comment", names.WINDOW_1HR),
                    caption="Spicy ramen at midnight",
                    category="Noodles/Pasta",
                    # the serving path asks Postgres: the user's images uploaded <= t
                    user_image_count=int((images.uploaded_at <= t).sum()),
                    user_created_at=user_created,
                )
            )
            training = _vector_from_row(batch.loc[m])
            np.testing.assert_array_equal(training, serving, err_msg=f"decision point {m} min")
            assert serving[features.FEATURE_NAMES.index("views_5min")] > 0 or m == 30
    finally:
        r.delete(*keys.values())

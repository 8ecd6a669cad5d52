"""Producing test events and seeding the platform database for the ETL tests."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta

from confluent_kafka import Producer
from sqlalchemy.orm import Session

from gourmetgram.common import db, names
from gourmetgram.common.events import CommentEvent, FlagEvent, ViewEvent


def view(image_id: str, at: datetime) -> ViewEvent:
    return ViewEvent(image_id=uuid.UUID(image_id), viewed_at=at)


def comment(image_id: str, at: datetime, user_id: str | None = None) -> CommentEvent:
    return CommentEvent(
        comment_id=uuid.uuid4(),
        image_id=uuid.UUID(image_id),
        user_id=uuid.UUID(user_id) if user_id else uuid.uuid4(),
        content="nice",
        created_at=at,
    )


def flag(image_id: str, at: datetime) -> FlagEvent:
    return FlagEvent(
        flag_id=uuid.uuid4(), user_id=uuid.uuid4(), image_id=uuid.UUID(image_id), reason="spam", created_at=at
    )


TOPIC_OF = {ViewEvent: names.TOPIC_VIEWS, CommentEvent: names.TOPIC_COMMENTS, FlagEvent: names.TOPIC_FLAGS}


def produce(
    bootstrap: str, events: Iterable[object], raw: Iterable[tuple[str, bytes]] = (), partition: int | None = None
) -> int:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True})
    n = 0
    for ev in events:
        kwargs = {"partition": partition} if partition is not None else {}
        producer.produce(TOPIC_OF[type(ev)], value=ev.to_bytes(), key=str(ev.image_id).encode(), **kwargs)
        n += 1
    for topic, value in raw:
        producer.produce(topic, value=value)
        n += 1
    assert producer.flush(30) == 0
    return n


VIEW_OFFSETS_A = [45 * k for k in range(40)]  # 0 .. 1755 s after upload
COMMENT_OFFSETS_A = [60, 120, 180, 240, 360, 1200, 1770]


def seed(settings, base: datetime) -> dict[str, object]:
    """Users, images and flags in Postgres; returns ids and the events to produce."""
    u1, u2 = uuid.uuid4(), uuid.uuid4()
    a, b, c, d = (uuid.uuid4() for _ in range(4))
    cutoff = base + timedelta(minutes=60)

    def image(img, user, at, caption, category):
        return db.Image(
            id=img,
            user_id=user,
            s3_url=f"http://x/{img}",
            s3_key=f"k/{img}",
            content_type="image/jpeg",
            size_bytes=1,
            caption=caption,
            category=category,
            uploaded_at=at,
        )

    engine = db.engine_for(settings.database_url.get_secret_value())
    with Session(engine) as s, s.begin():
        s.add_all(
            [
                db.User(id=u1, username=f"u1-{u1.hex[:8]}", created_at=base - timedelta(days=3, hours=1)),
                db.User(id=u2, username=f"u2-{u2.hex[:8]}", created_at=base - timedelta(hours=1)),
            ]
        )
        s.flush()
        s.add_all(
            [
                image(a, u1, base, "pasta night", "Noodles/Pasta"),
                image(b, u1, base + timedelta(minutes=3), None, "Dessert"),
                image(c, u2, base + timedelta(minutes=1), "soup", "Soup"),
                image(d, u2, cutoff - timedelta(minutes=10), "too young", "Rice"),
            ]
        )
        s.flush()
        cm = db.Comment(image_id=a, user_id=u2, content="hm", created_at=base + timedelta(minutes=2))
        s.add(cm)
        s.flush()
        s.add_all(
            [
                db.Flag(user_id=u2, image_id=a, reason="spam", created_at=base + timedelta(minutes=20)),  # in horizon
                db.Flag(user_id=u1, image_id=c, reason="spam", created_at=base + timedelta(minutes=42)),  # 41 min > 40
                db.Flag(user_id=u1, comment_id=cm.id, reason="rude", created_at=base + timedelta(minutes=5)),
            ]
        )
    ids = {k: str(v) for k, v in dict(a=a, b=b, c=c, d=d).items()}
    events = [view(ids["a"], base + timedelta(seconds=s)) for s in VIEW_OFFSETS_A]
    events += [comment(ids["a"], base + timedelta(seconds=s)) for s in COMMENT_OFFSETS_A]
    events += [view(ids["a"], base + timedelta(minutes=31)), view(ids["a"], cutoff + timedelta(minutes=1))]
    b_up = base + timedelta(minutes=3)
    events += [view(ids["b"], b_up + timedelta(seconds=s)) for s in (0, 300, 301)]
    return {"ids": ids, "events": events, "cutoff": cutoff}


def assert_hand_checked(rows, ids, base) -> None:
    """The expected training rows of the seeded images (see seed)."""
    import pytest

    by = {(r.image_id, r.decision_point_minutes): r for r in rows.itertuples()}
    a, b, c, d = ids["a"], ids["b"], ids["c"], ids["d"]
    assert d not in set(rows.image_id)  # younger than the horizon at the cutoff: left out
    assert sorted(by) == sorted((i, m) for i in (a, b, c) for m in (0, 5, 30))

    expect_a = {  # (views_5min, views_1hr, comments_5min, comments_1hr) by decision point
        0: (1, 1, 0, 0),
        5: (7, 7, 4, 4),  # closed [t-300, t]: views at 0..270 s, comments at 60..240 s
        30: (6, 40, 1, 7),  # views at 1530..1755 s; the view at +31 min is after t
    }
    for m, want in expect_a.items():
        r = by[(a, m)]
        assert (r.views_5min, r.views_1hr, r.comments_5min, r.comments_1hr) == want, m
        assert r.time_since_upload_seconds == m * 60
        assert r.view_velocity_per_min == pytest.approx(want[0] / 5)
        assert r.recent_engagement_score == pytest.approx(want[0] + 5 * want[2])
        assert r.comment_to_view_ratio == pytest.approx(want[3] / max(want[1], 1))
        assert r.label_needs_moderation_24h == 1
        assert (r.category, r.caption_length, r.has_caption, r.user_age_days) == ("Noodles/Pasta", 11, 1, 3)
        assert r.hour_of_day == base.hour and r.day_of_week == base.weekday()
    assert [by[(a, m)].user_image_count for m in (0, 5, 30)] == [1, 2, 2]
    assert (by[(b, 0)].views_5min, by[(b, 5)].views_5min, by[(b, 30)].views_1hr) == (1, 2, 3)
    assert (by[(b, 0)].has_caption, by[(b, 0)].category, by[(b, 0)].label_needs_moderation_24h) == (0, "Dessert", 0)
    assert all(by[(c, m)].views_1hr == 0 and by[(c, m)].label_needs_moderation_24h == 0 for m in (0, 5, 30))
    assert by[(c, 30)].user_image_count == 1 and by[(c, 0)].user_age_days == 0

"""Producing test events and seeding the platform database for the ETL tests."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime

from confluent_kafka import Producer

from gourmetgram.common import names
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

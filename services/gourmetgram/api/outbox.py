"""Writing events into the transactional outbox.

The row is inserted with the same connection (and so the same transaction) as the state
change it reports, so an acknowledged write always has its event stored durably; the relay
publishes it later. Payload field names are the reference's (§3.4) plus ``event_id``;
timestamps are ISO-8601 with an explicit ``+00:00`` offset.
"""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, insert

from gourmetgram.common import names
from gourmetgram.common.db import OutboxEvent
from gourmetgram.common.events import PlatformEvent

# Set after a commit that wrote outbox rows, so a relay in the same process wakes at once
# instead of waiting for its next poll.
outbox_written = threading.Event()


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def event_payload(event: PlatformEvent) -> dict[str, Any]:
    return {k: _jsonable(v) for k, v in event.model_dump().items()}


def event_key(event: PlatformEvent) -> str | None:
    """Partition key: the image id, so one image's events stay in order on one partition."""
    return event.image_key


def add_event(conn: Connection, event: PlatformEvent) -> None:
    conn.execute(
        insert(OutboxEvent.__table__).values(
            event_id=event.event_id,
            topic=names.TOPIC_BY_EVENT_TYPE[event.event_type],
            key=event_key(event),
            payload=event_payload(event),
        )
    )

"""``gourmetgram simulate-viral``: publish a viral burst of view events (lab steps 5b and 8d).

Events are proper ViewEvents (event id, ``viewed_at`` spread over the last few minutes),
published in event-time order with the image id as key, acks=all, so the stream consumer
sees the burst build up inside its 5-minute window.
"""

from __future__ import annotations

import random
import sys
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, text

from gourmetgram.common import db, kafka, names
from gourmetgram.common.events import ViewEvent

_FRESH_IMAGE = text(
    "SELECT id FROM images i WHERE NOT EXISTS (SELECT 1 FROM moderation_decisions d"
    " WHERE d.image_id = i.id AND d.trigger_type = :trigger"
    " AND d.created_at > now() - make_interval(secs => :cooldown)) ORDER BY random() LIMIT 1"
)


def fresh_image(conn: Connection) -> uuid.UUID | None:
    """A random image that has not gone viral within the consumer's alert cooldown: such an image
    would give no second alert and no decision (the lab's 8d burst must not land on 5b's image)."""
    return conn.execute(_FRESH_IMAGE, {"trigger": names.TRIGGER_VIRAL, "cooldown": names.LONGEST_WINDOW}).scalar()


def pick_image(database_url: str, image_id: str | None) -> uuid.UUID:
    engine = db.engine_for(database_url)
    with engine.connect() as conn:
        if image_id:
            found = conn.execute(text("SELECT id FROM images WHERE id = :id"), {"id": image_id}).scalar()
            if found is None:
                raise SystemExit(f"image {image_id} not found in the database")
            return found
        found = fresh_image(conn)
    if found is None:
        raise SystemExit("No images found in the database. Run the data generator first.")
    return found


def build_burst(image_id: uuid.UUID, views: int, spread_seconds: float, now: datetime | None = None) -> list[ViewEvent]:
    now = now or datetime.now(UTC)
    offsets = sorted((random.uniform(0, spread_seconds) for _ in range(views)), reverse=True)
    return [ViewEvent(image_id=image_id, viewed_at=now - timedelta(seconds=o), source="simulator") for o in offsets]


def publish(bootstrap: str, events: list[ViewEvent]) -> int:
    producer = kafka.durable_producer(bootstrap, "gourmetgram-simulate-viral")
    errors: list[str] = []
    for ev in events:
        producer.produce(
            names.TOPIC_VIEWS,
            key=str(ev.image_id).encode(),
            value=ev.to_bytes(),
            on_delivery=lambda err, _m: errors.append(str(err)) if err else None,
        )
    remaining = producer.flush(30)
    if remaining or errors:
        raise SystemExit(f"broker did not acknowledge {remaining or len(errors)} event(s): {errors[:3]}")
    return len(events)


def main(database_url: str, bootstrap: str, image_id: str | None, views: int, spread_seconds: float) -> uuid.UUID:
    image = pick_image(database_url, image_id)
    print(f"Simulating viral burst for image: {image}")
    print(f"Publishing {views} view events to '{names.TOPIC_VIEWS}'...")
    sent = publish(bootstrap, build_burst(image, views, spread_seconds))
    print(f"Done. {sent} view events published.")
    print("Next: journalctl -u gourmetgram-stream-consumer -f   (viral alert)")
    print("      journalctl -u gourmetgram-inference -f         (moderation decision)")
    sys.stdout.flush()
    return image

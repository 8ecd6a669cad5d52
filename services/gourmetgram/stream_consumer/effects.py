"""Alerts and milestones the state script queued: publish / persist, then remove from the queue.

An entry leaves its Redis list only once its effect is durable: a moderation request acknowledged
by the broker (acks=all; its request id is deterministic, so a repeat maps to the same decision),
a milestone row committed (unique constraint, ON CONFLICT DO NOTHING). A crash in between repeats
the effect harmlessly.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

import redis
from confluent_kafka import Producer
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from gourmetgram.common import logs, names
from gourmetgram.common.events import ModerationRequest, moderation_request_id

log = logs.get_logger("stream-consumer")

# One round trip for a list of milestones: rows for known images are inserted (a repeat is a no-op),
# and every input comes back with whether its image exists and whether this call inserted it.
_MILESTONES = text(
    """
    WITH m AS (
        SELECT * FROM unnest(CAST(:ids AS uuid[]), CAST(:vals AS integer[]), CAST(:ts AS timestamptz[]))
            AS t(image_id, value, reached_at)
    ), ins AS (
        INSERT INTO image_milestones (image_id, milestone_type, milestone_value, reached_at)
        SELECT DISTINCT ON (m.image_id, m.value) m.image_id, 'views', m.value, m.reached_at
        FROM m JOIN images i ON i.id = m.image_id
        ON CONFLICT ON CONSTRAINT uq_image_milestone DO NOTHING
        RETURNING image_id, milestone_value
    )
    SELECT m.image_id, m.value, i.id IS NOT NULL,
           EXISTS (SELECT 1 FROM ins WHERE ins.image_id = m.image_id AND ins.milestone_value = m.value)
    FROM m LEFT JOIN images i ON i.id = m.image_id
    """
)


@dataclass
class Stats:
    messages: int = 0
    applied: int = 0
    replayed: int = 0
    unknown_image: int = 0
    dead_lettered: int = 0
    alerts: int = 0
    milestones: int = 0
    milestones_unknown_image: int = 0
    by_topic: dict[str, int] = field(default_factory=dict)


def flush_or_raise(producer: Producer, errors: list[str]) -> None:
    remaining = producer.flush(30)
    if remaining or errors:
        raise RuntimeError(f"broker did not acknowledge {remaining} message(s): {errors[:3]}")


class PendingEffects:
    def __init__(self, redis_client: redis.Redis, engine: Engine, producer: Producer, stats: Stats) -> None:
        self.redis = redis_client
        self.engine = engine
        self.producer = producer
        self.stats = stats

    def drain_pending(self, alerts: bool = True, milestones: bool = True) -> None:
        pipe = self.redis.pipeline(transaction=False)
        lists = [
            k for k, want in ((names.KEY_PENDING_MILESTONES, milestones), (names.KEY_PENDING_ALERTS, alerts)) if want
        ]
        for key in lists:
            pipe.lrange(key, 0, -1)
        found = dict(zip(lists, pipe.execute(), strict=True))
        if found.get(names.KEY_PENDING_ALERTS):  # first: a moderation decision waits for these
            self._publish_alerts(found[names.KEY_PENDING_ALERTS])
        if found.get(names.KEY_PENDING_MILESTONES):
            self._persist_milestones(found[names.KEY_PENDING_MILESTONES])

    def _persist_milestones(self, records: list[str]) -> None:
        """All pending milestones in one statement; an image PostgreSQL does not know gets none."""
        recs = [json.loads(raw) for raw in records]
        try:
            with self.engine.begin() as conn:
                rows = conn.execute(
                    _MILESTONES,
                    {
                        "ids": [r["image_id"] for r in recs],
                        "vals": [int(r["value"]) for r in recs],
                        "ts": [datetime.fromtimestamp(float(r["ts"]), UTC) for r in recs],
                    },
                ).all()
        except OperationalError as exc:
            logs.event(log, "milestone persistence deferred: database unavailable", level=30, error=str(exc)[:200])
            return
        for row in rows:
            image_id, value, known, inserted = str(row[0]), int(row[1]), bool(row[2]), bool(row[3])
            if not known:
                # The image is unknown to Postgres (e.g. events injected for a missing id): nothing to persist.
                logs.event(log, "milestone for unknown image dropped", level=30, image_id=image_id)
                self.stats.milestones_unknown_image += 1
                continue
            self.stats.milestones += int(inserted)
            logs.event(
                log,
                f"{names.LOG_MILESTONE} Image {image_id[:8]}... hit {value:,} total views",
                image_id=image_id,
                milestone=value,
                persisted=inserted,
            )
        self._remove(names.KEY_PENDING_MILESTONES, records)

    def _publish_alerts(self, records: list[str]) -> None:
        errors: list[str] = []
        requests: list[str] = []
        for raw in records:
            rec = json.loads(raw)
            trigger, image_id, count = rec["trigger"], rec["image_id"], int(rec["count"])
            if trigger == names.TRIGGER_VIRAL:
                logs.event(
                    log,
                    f"{names.LOG_VIRAL} Image {image_id[:8]}... received {count} views in 5 minutes "
                    f"(threshold: {rec['threshold']})",
                    level=30,
                    image_id=image_id,
                    trigger=trigger,
                    views_5min=count,
                )
            elif trigger == names.TRIGGER_SUSPICIOUS:
                logs.event(
                    log,
                    f"{names.LOG_SUSPICIOUS} Image {image_id[:8]}... received {count} comments in 1 minute "
                    f"(threshold: {rec['threshold']})",
                    level=30,
                    image_id=image_id,
                    trigger=trigger,
                    comments_1min=count,
                )
            else:
                logs.event(
                    log,
                    f"{names.LOG_POPULAR} Image {image_id[:8]}... received {count} views in 1 hour "
                    f"(threshold: {rec['threshold']})",
                    image_id=image_id,
                    trigger=trigger,
                    views_1hr=count,
                )
                self.stats.alerts += 1
                self._remove(names.KEY_PENDING_ALERTS, [raw])
                continue
            ts = float(rec["ts"])
            request = ModerationRequest(
                request_id=moderation_request_id(image_id, trigger, int(ts)),
                image_id=uuid.UUID(image_id),
                trigger=trigger,
                context={rec["field"]: count},
                requested_at=datetime.fromtimestamp(ts, UTC),
            )
            self.producer.produce(
                names.TOPIC_MODERATION_REQUESTS,
                key=image_id.encode(),
                value=request.to_bytes(),
                on_delivery=lambda err, _m: errors.append(str(err)) if err else None,
            )
            requests.append(raw)
        if requests:
            flush_or_raise(self.producer, errors)
            for raw in requests:
                rec = json.loads(raw)
                logs.event(
                    log,
                    f"Published moderation request for {rec['image_id'][:8]}... (trigger: {rec['trigger']})",
                    image_id=rec["image_id"],
                    trigger=rec["trigger"],
                )
            self.stats.alerts += len(requests)
            self._remove(names.KEY_PENDING_ALERTS, requests)

    def _remove(self, key: str, raws: list[str]) -> None:
        if not raws:
            return
        pipe = self.redis.pipeline(transaction=False)
        for raw in raws:
            pipe.lrem(key, 1, raw)
        pipe.execute()

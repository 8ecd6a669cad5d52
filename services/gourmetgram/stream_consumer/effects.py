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
from sqlalchemy.exc import IntegrityError, OperationalError

from gourmetgram.common import logs, names
from gourmetgram.common.events import ModerationRequest, moderation_request_id

log = logs.get_logger("stream-consumer")


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

    def drain_pending(self) -> None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.lrange(names.KEY_PENDING_MILESTONES, 0, -1)
        pipe.lrange(names.KEY_PENDING_ALERTS, 0, -1)
        milestones, alerts = pipe.execute()
        if milestones:
            self._persist_milestones(milestones)
        if alerts:
            self._publish_alerts(alerts)

    def _persist_milestones(self, records: list[str]) -> None:
        done: list[str] = []
        for raw in records:
            rec = json.loads(raw)
            reached = datetime.fromtimestamp(float(rec["ts"]), UTC)
            try:
                with self.engine.begin() as conn:
                    inserted = conn.execute(
                        text(
                            "INSERT INTO image_milestones (image_id, milestone_type, milestone_value, reached_at)"
                            " VALUES (:image_id, 'views', :value, :reached_at)"
                            " ON CONFLICT ON CONSTRAINT uq_image_milestone DO NOTHING"
                        ),
                        {"image_id": rec["image_id"], "value": int(rec["value"]), "reached_at": reached},
                    ).rowcount
                if inserted:
                    self.stats.milestones += 1
                logs.event(
                    log,
                    f"MILESTONE REACHED! Image {rec['image_id'][:8]}... hit {int(rec['value']):,} total views",
                    image_id=rec["image_id"],
                    milestone=rec["value"],
                    persisted=bool(inserted),
                )
                done.append(raw)
            except IntegrityError:
                # The image is unknown to Postgres (e.g. events injected for a missing id): nothing to persist.
                logs.event(log, "milestone for unknown image dropped", level=30, image_id=rec["image_id"])
                self.stats.milestones_unknown_image += 1
                done.append(raw)
            except OperationalError as exc:
                logs.event(
                    log,
                    "milestone persistence deferred: database unavailable",
                    level=30,
                    error=str(exc)[:200],
                )
                break
        self._remove(names.KEY_PENDING_MILESTONES, done)

    def _publish_alerts(self, records: list[str]) -> None:
        errors: list[str] = []
        requests: list[str] = []
        for raw in records:
            rec = json.loads(raw)
            trigger, image_id, count = rec["trigger"], rec["image_id"], int(rec["count"])
            if trigger == names.TRIGGER_VIRAL:
                logs.event(
                    log,
                    f"VIRAL CONTENT ALERT! Image {image_id[:8]}... received {count} views in 5 minutes "
                    f"(threshold: {rec['threshold']})",
                    level=30,
                    image_id=image_id,
                    trigger=trigger,
                    views_5min=count,
                )
            elif trigger == names.TRIGGER_SUSPICIOUS:
                logs.event(
                    log,
                    f"SUSPICIOUS ACTIVITY ALERT! Image {image_id[:8]}... received {count} comments in 1 minute "
                    f"(threshold: {rec['threshold']})",
                    level=30,
                    image_id=image_id,
                    trigger=trigger,
                    comments_1min=count,
                )
            else:
                logs.event(
                    log,
                    f"POPULAR POST! Image {image_id[:8]}... received {count} views in 1 hour "
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

"""Stream consumer core: Kafka events → Redis windows, milestones, alerts, moderation requests.

Delivery is at-least-once with idempotent effects:
- a batch is applied to Redis by one Lua script, atomically with the per-partition offsets it
  covers, so a replayed message is skipped (and views/comments/flags are also keyed by event id);
- alerts and milestones the script raises are queued in Redis lists and removed only after the
  moderation request is acknowledged by the broker (acks=all) or the milestone row is committed
  (unique constraint, ON CONFLICT DO NOTHING), so a crash in between repeats them harmlessly;
- Kafka offsets are committed after the batch is applied;
- a message that cannot be parsed goes to the dead-letter topic with its origin in headers.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import redis
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError

from gourmetgram.common import kafka, logs, names
from gourmetgram.common.events import (
    CommentEvent,
    EventError,
    FlagEvent,
    ModerationRequest,
    PlatformEvent,
    UploadEvent,
    ViewEvent,
    moderation_request_id,
    parse_event,
)
from gourmetgram.common.settings import StreamConsumerSettings

log = logs.get_logger("stream-consumer")

_LUA = resources.files("gourmetgram.stream_consumer").joinpath("state.lua").read_text()


@dataclass
class Stats:
    messages: int = 0
    applied: int = 0
    replayed: int = 0
    dead_lettered: int = 0
    alerts: int = 0
    milestones: int = 0
    by_topic: dict[str, int] = field(default_factory=dict)


def _script_event(ev: PlatformEvent, msg: Message) -> dict[str, Any]:
    base: dict[str, Any] = {
        "t": ev.event_type,
        "id": str(ev.event_id),
        "ts": ev.occurred_at.timestamp(),
        "p": f"{msg.topic()}:{msg.partition()}",
        "o": msg.offset(),
    }
    if ev.image_key is not None:  # a flag on a comment has no image
        base["img"] = ev.image_key
    if isinstance(ev, UploadEvent):
        base.update(
            category=ev.category if ev.category is not None else names.UNKNOWN_CATEGORY,
            caption_length=len(ev.caption or ""),
            uploaded_at=ev.uploaded_at.isoformat(),
            user_id=str(ev.user_id),
        )
    return base


class StreamProcessor:
    def __init__(
        self,
        settings: StreamConsumerSettings,
        redis_client: redis.Redis,
        engine: Engine,
        producer: Producer,
    ) -> None:
        self.settings = settings
        self.redis = redis_client
        self.engine = engine
        self.producer = producer
        self.stats = Stats()
        self._script = redis_client.register_script(_LUA)
        self._config = json.dumps(
            {
                "offsets_key": f"{names.KEY_CONSUMER_OFFSETS}:{settings.kafka_consumer_group}",
                "pending_alerts": names.KEY_PENDING_ALERTS,
                "pending_milestones": names.KEY_PENDING_MILESTONES,
                "k_views": names.key_views("%s"),
                "k_comments": names.key_comments("%s"),
                "k_flags": names.key_flags("%s"),
                "k_metadata": names.key_metadata("%s"),
                "k_total_views": names.key_total("%s", "views"),
                "k_total_comments": names.key_total("%s", "comments"),
                "k_total_flags": names.key_total("%s", "flags"),
                "k_alert": names.key_alert("%s", "").rstrip(":"),
                "viral": settings.viral_threshold_views_5min,
                "suspicious": settings.suspicious_threshold_comments_1min,
                "popular": settings.popular_threshold_views_1hr,
                "cooldown": settings.alert_cooldown_seconds,
                "longest": names.LONGEST_WINDOW,
                "window_ttl": names.LONGEST_WINDOW * 2,
                "state_ttl": settings.image_state_ttl_seconds,
                "milestones": list(names.VIEW_MILESTONES),
            }
        )

    # --- one batch ------------------------------------------------------------------------
    def process(self, messages: list[Message]) -> None:
        script_events: list[dict[str, Any]] = []
        dead: list[tuple[Message, str]] = []
        for msg in messages:
            topic = msg.topic() or ""
            self.stats.messages += 1
            self.stats.by_topic[topic] = self.stats.by_topic.get(topic, 0) + 1
            try:
                ev = parse_event(msg.value() or b"", topic)
                if isinstance(ev, ViewEvent | CommentEvent | UploadEvent) and ev.image_key is None:
                    raise EventError("event has no image_id")
                script_events.append(_script_event(ev, msg))
            except EventError as exc:
                dead.append((msg, str(exc)))
                script_events.append({"t": "skip", "p": f"{topic}:{msg.partition()}", "o": msg.offset()})
        if dead:
            self._dead_letter(dead)
        if not script_events:
            return
        try:
            self._apply(script_events)
        except redis.ResponseError as exc:
            # The script refused something in this batch (not a connection problem): apply the
            # events one at a time and dead-letter the ones it refuses, instead of retrying forever.
            logs.event(log, "batch refused by the state script; applying one by one", level=30, error=str(exc)[:200])
            by_offset = {(f"{m.topic()}:{m.partition()}", m.offset()): m for m in messages}
            for ev in script_events:
                try:
                    self._apply([ev])
                except redis.ResponseError as one:
                    self._dead_letter([(by_offset[(ev["p"], ev["o"])], f"refused by state script: {one}")])
                    self._apply([{"t": "skip", "p": ev["p"], "o": ev["o"]}])

    def _apply(self, script_events: list[dict[str, Any]]) -> None:
        applied, replayed = self._script(args=[json.dumps(script_events), self._config])
        self.stats.applied += int(applied)
        self.stats.replayed += int(replayed)

    def _dead_letter(self, dead: list[tuple[Message, str]]) -> None:
        errors: list[str] = []
        for msg, reason in dead:
            headers = kafka.dead_letter_headers(msg, reason)
            self.producer.produce(
                names.TOPIC_DEAD_LETTER,
                value=msg.value(),
                key=msg.key(),
                headers=headers,
                on_delivery=lambda err, _m: errors.append(str(err)) if err else None,
            )
            logs.event(
                log,
                "dead-lettered malformed message",
                level=30,
                topic=msg.topic(),
                partition=msg.partition(),
                offset=msg.offset(),
                error=reason,
            )
        self._flush_or_raise(errors)
        self.stats.dead_lettered += len(dead)

    def _flush_or_raise(self, errors: list[str]) -> None:
        remaining = self.producer.flush(30)
        if remaining or errors:
            raise RuntimeError(f"broker did not acknowledge {remaining} message(s): {errors[:3]}")

    # --- alerts and milestones -------------------------------------------------------------------
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
                    f"{names.LOG_MILESTONE} Image {rec['image_id'][:8]}... hit {int(rec['value']):,} total views",
                    image_id=rec["image_id"],
                    milestone=rec["value"],
                    persisted=bool(inserted),
                )
                done.append(raw)
            except IntegrityError:
                # The image is unknown to Postgres (e.g. events injected for a missing id): nothing to persist.
                logs.event(log, "milestone for unknown image dropped", level=30, image_id=rec["image_id"])
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
            self._flush_or_raise(errors)
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


def consume_forever(
    consumer: Consumer,
    processor: StreamProcessor,
    settings: StreamConsumerSettings,
    should_stop: Any,
    stats_interval: float = 30.0,
) -> None:
    """Poll, apply, commit; on a failure seek back and retry the batch after a backoff."""
    backoff = 1.0
    last_stats = time.monotonic()
    processor.drain_pending()
    while not should_stop():
        messages = consumer.consume(num_messages=settings.consumer_batch_size, timeout=settings.consumer_poll_timeout)
        good = []
        for msg in messages:
            err = msg.error()
            if err is None:
                good.append(msg)
            elif err.code() != KafkaError._PARTITION_EOF:
                logs.event(log, "kafka error", level=30, error=str(err))
        try:
            if good:
                processor.process(good)
                consumer.commit(offsets=_next_offsets(good), asynchronous=False)
            processor.drain_pending()
            backoff = 1.0
        except (redis.RedisError, RuntimeError, OperationalError) as exc:
            logs.event(log, "batch failed; will retry", level=40, error=str(exc)[:300], retry_in_s=backoff)
            for tp in _first_offsets(good):
                consumer.seek(tp)
            time.sleep(backoff)
            backoff = min(backoff * 2, 30.0)
        now = time.monotonic()
        if now - last_stats >= stats_interval:
            s = processor.stats
            logs.event(
                log,
                f"Processed {s.messages} messages",
                applied=s.applied,
                replayed=s.replayed,
                dead_lettered=s.dead_lettered,
                alerts=s.alerts,
                milestones=s.milestones,
                by_topic=json.dumps(s.by_topic),
            )
            last_stats = now


def _next_offsets(messages: list[Message]) -> list[TopicPartition]:
    last: dict[tuple[str, int], int] = {}
    for m in messages:
        last[(m.topic(), m.partition())] = max(last.get((m.topic(), m.partition()), -1), m.offset())
    return [TopicPartition(t, p, o + 1) for (t, p), o in last.items()]


def _first_offsets(messages: list[Message]) -> list[TopicPartition]:
    first: dict[tuple[str, int], int] = {}
    for m in messages:
        key = (m.topic(), m.partition())
        first[key] = min(first.get(key, m.offset()), m.offset())
    return [TopicPartition(t, p, o) for (t, p), o in first.items()]


__all__ = ["FlagEvent", "StreamProcessor", "consume_forever"]

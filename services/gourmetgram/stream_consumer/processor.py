"""Stream consumer core: Kafka events → Redis windows, milestones, alerts, moderation requests.

Delivery is at-least-once with idempotent effects:
- a batch is applied to Redis by one Lua script, atomically with the per-partition offsets it
  covers, so a replayed message is skipped (and views/comments/flags are also keyed by event id);
- alerts and milestones the script raises are queued in Redis lists and removed only after the
  moderation request is acknowledged by the broker (acks=all) or the milestone row is committed
  (see effects.py), so a crash in between repeats them harmlessly;
- Kafka offsets are committed after the batch is applied (asynchronously: the offsets stored in
  Redis are what makes a replay harmless; the commit only shortens it);
- a message that cannot be parsed goes to the dead-letter topic (a bounded copy that points at the
  original, common.kafka.dead_letter_record); if the broker does not take it, the batch is retried.

Events about unknown images (policy): the consumer does not look an image up in PostgreSQL per view,
comment or flag. Upload events, which are rare and which the API publishes only after the image row
is committed, are checked (one query per batch that has any): an upload for an image PostgreSQL does
not know is dead-lettered. A view, comment or flag whose image has no metadata in Redis (its upload
event unread, or never sent) is applied, counted as ``unknown_image`` and kept only for
names.UNKNOWN_IMAGE_STATE_TTL, because a view may be read before its upload event (another topic,
another partition) and dropping it would lose a legitimate view. Moderation requests for such an
image are still published; the inference service checks the image in PostgreSQL (one query per
request, which is rare) and writes no decision for an image that does not exist. Trade-off: a bogus
image id costs Redis memory for two hours, and the counts of an image whose Redis metadata was lost
also expire after two idle hours.
"""

from __future__ import annotations

import json
import time
from importlib import resources
from typing import Any

import redis
from confluent_kafka import Consumer, Message, Producer, TopicPartition
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from gourmetgram.common import kafka, logs, names
from gourmetgram.common.events import CommentEvent, EventError, PlatformEvent, UploadEvent, ViewEvent, parse_event
from gourmetgram.common.settings import StreamConsumerSettings
from gourmetgram.stream_consumer.effects import PendingEffects, Stats, flush_or_raise
from gourmetgram.stream_consumer.offsets import OffsetGuard

log = logs.get_logger("stream-consumer")

_KNOWN_IMAGES = text("SELECT id FROM images WHERE id = ANY(CAST(:ids AS uuid[]))")
MILESTONE_INTERVAL = 1.0  # seconds between milestone writes while a backlog drains
_LUA = resources.files("gourmetgram.stream_consumer").joinpath("state.lua").read_text()


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
        guard: OffsetGuard | None = None,
        consumer: Consumer | None = None,
    ) -> None:
        self.settings = settings
        self.redis = redis_client
        self.engine = engine
        self.producer = producer
        self.guard = guard
        self.consumer = consumer
        self.stats = Stats()
        self.effects = PendingEffects(redis_client, engine, producer, self.stats)
        self.alerts_pending = self.milestones_pending = True  # unknown at start: drain once
        self._milestones_drained = 0.0
        group = settings.kafka_consumer_group
        self.counts_key = f"{names.KEY_CONSUMER_COUNTS}:{group}"
        self._script = redis_client.register_script(_LUA)
        self._config = json.dumps(
            {
                "offsets_key": f"{names.KEY_CONSUMER_OFFSETS}:{group}",
                "counts_key": self.counts_key,
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
                "unknown_ttl": names.UNKNOWN_IMAGE_STATE_TTL,
                "milestones": list(names.VIEW_MILESTONES),
            }
        )

    # --- one batch ------------------------------------------------------------------------
    def process(self, messages: list[Message]) -> None:
        script_events: list[dict[str, Any]] = []
        dead: list[tuple[Message, str]] = []
        backwards: list[TopicPartition] = []
        by_topic = self.stats.by_topic
        for msg in messages:
            topic = msg.topic() or ""
            by_topic[topic] = by_topic.get(topic, 0) + 1
            if self.guard is not None and self.guard.went_backwards(topic, msg.partition(), msg.offset()):
                backwards.append(TopicPartition(topic, msg.partition()))
            try:
                ev = parse_event(msg.value() or b"", topic)
                if isinstance(ev, ViewEvent | CommentEvent | UploadEvent) and ev.image_key is None:
                    raise EventError("event has no image_id")
                script_events.append(_script_event(ev, msg))
            except EventError as exc:
                dead.append((msg, str(exc)))
                script_events.append({"t": "skip", "p": f"{topic}:{msg.partition()}", "o": msg.offset()})
        self.stats.messages += len(messages)
        self._refuse_unknown_uploads(messages, script_events, dead)
        if backwards and self.guard is not None and self.consumer is not None:
            logs.event(log, "offsets went backwards while consuming; checking topic ids", level=30)
            self.guard.verify(self.consumer, backwards)
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

    def _refuse_unknown_uploads(
        self, messages: list[Message], script_events: list[dict[str, Any]], dead: list[tuple[Message, str]]
    ) -> None:
        """Upload events are checked against PostgreSQL (one query per batch that has any; uploads are rare).

        The API publishes an upload only after its row is committed, so an upload for an image
        PostgreSQL does not know was not sent by the platform: it is dead-lettered instead of creating
        30 days of metadata. With the database away the uploads are applied (fail open), with a warning.
        """
        uploads = [i for i, e in enumerate(script_events) if e["t"] == "upload"]
        if not uploads:
            return
        ids = list({script_events[i]["img"] for i in uploads})
        try:
            with self.engine.connect() as conn:
                known = {str(r) for r in conn.execute(_KNOWN_IMAGES, {"ids": ids}).scalars()}
        except OperationalError as exc:
            logs.event(log, "upload check skipped: database unavailable", level=30, error=str(exc)[:200])
            return
        by_offset = {(f"{m.topic()}:{m.partition()}", m.offset()): m for m in messages}
        for i in uploads:
            ev = script_events[i]
            if ev["img"] not in known:
                dead.append((by_offset[(ev["p"], ev["o"])], f"unknown image: {ev['img']} is not in PostgreSQL"))
                script_events[i] = {"t": "skip", "p": ev["p"], "o": ev["o"]}

    def _apply(self, script_events: list[dict[str, Any]]) -> None:
        applied, replayed, unknown, alerts, milestones = self._script(args=[json.dumps(script_events), self._config])
        self.stats.applied += int(applied)
        self.stats.replayed += int(replayed)
        self.stats.unknown_image += int(unknown)
        self.alerts_pending = self.alerts_pending or int(alerts) > 0
        self.milestones_pending = self.milestones_pending or int(milestones) > 0

    def _dead_letter(self, dead: list[tuple[Message, str]]) -> None:
        errors: list[str] = []
        for msg, reason in dead:
            self.producer.produce(
                names.TOPIC_DEAD_LETTER,
                **kafka.dead_letter_record(msg, reason),
                on_delivery=lambda err, _m: errors.append(str(err)) if err else None,
            )
            logs.event(
                log,
                "dead-lettered malformed message",
                level=30,
                topic=msg.topic(),
                partition=msg.partition(),
                offset=msg.offset(),
                size=len(msg.value() or b""),
                error=reason[:300],
            )
        flush_or_raise(self.producer, errors)
        self.stats.dead_lettered += len(dead)
        self.redis.hincrby(self.counts_key, "dead_lettered", len(dead))

    # --- alerts and milestones -------------------------------------------------------------------
    def drain_pending(self, caught_up: bool = True) -> None:
        """Publish / persist what the script queued; nothing to do costs no round trip.

        Alerts go out at once (a moderation decision waits for them). Milestones are written when a
        poll finds nothing new, or once a second while events keep coming (one statement for all), so
        that writing them never delays the rest of a burst.
        """
        now = time.monotonic()
        milestones = self.milestones_pending and (caught_up or now - self._milestones_drained >= MILESTONE_INTERVAL)
        if not (self.alerts_pending or milestones):
            return
        self.effects.drain_pending(alerts=self.alerts_pending, milestones=milestones)
        self.alerts_pending = False
        if milestones:
            self.milestones_pending, self._milestones_drained = False, now

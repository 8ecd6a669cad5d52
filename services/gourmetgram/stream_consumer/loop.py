"""The stream consumer's loop: take what is there, apply, commit; no single message or broker hiccup stops it.

- Batches: wait for one message, then take what is already buffered (common.kafka.next_batch); a
  lone event is applied at once, a backlog in batches of CONSUMER_BATCH_SIZE.
- A batch whose effects fail (Redis, PostgreSQL or the broker away) is sought back and retried
  with a backoff; its offsets are not committed before it is applied.
- Commits are asynchronous; a failed commit (coordinator moving, broker restarting: _WAIT_COORD,
  NOT_COORDINATOR ...) is logged and absorbed: the next commit carries the offsets, and a replay is
  harmless (offsets in Redis). Only a fatal client error ends the loop (FatalKafkaError), with a
  log line; systemd restarts the unit.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import redis
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition
from sqlalchemy.exc import OperationalError

from gourmetgram.common import kafka, logs
from gourmetgram.common.settings import StreamConsumerSettings
from gourmetgram.stream_consumer.processor import StreamProcessor

log = logs.get_logger("stream-consumer")

IDLE_DRAIN_SECONDS = 5.0  # deferred milestones (database away) are retried this often when idle


def on_commit(err: KafkaError | None, _partitions: list[TopicPartition]) -> None:
    if err is not None:
        logs.event(log, "offset commit failed; the next commit carries it", level=30, error=str(err))


def consume_forever(
    consumer: Consumer,
    processor: StreamProcessor,
    settings: StreamConsumerSettings,
    should_stop: Callable[[], bool],
    stats_interval: float = 30.0,
) -> None:
    """Poll, apply, commit; on a failure seek back and retry the batch after a backoff."""
    backoff = 1.0
    last_stats = last_drain = time.monotonic()
    done: dict[tuple[str, int], int] = {}  # next offset per partition, applied and committed (async)
    while not should_stop():
        good = kafka.next_batch(consumer, settings.consumer_batch_size, settings.consumer_poll_timeout, log)
        try:
            if good:
                processor.process(good)
                _commit(consumer, good, done)
            if not good and time.monotonic() - last_drain > IDLE_DRAIN_SECONDS:
                processor.alerts_pending = processor.milestones_pending = True
                last_drain = time.monotonic()
            processor.drain_pending(caught_up=not good)
            backoff = 1.0
        except (redis.RedisError, RuntimeError, OperationalError, KafkaException) as exc:
            if isinstance(exc, KafkaException) and not kafka.retriable(exc.args[0]):
                raise
            logs.event(log, "batch failed; will retry", level=40, error=str(exc)[:300], retry_in_s=backoff)
            _seek_back(consumer, processor, good)
            time.sleep(backoff)
            backoff = min(backoff * 2, 30.0)
        now = time.monotonic()
        if now - last_stats >= stats_interval:
            _log_stats(processor)
            last_stats = now
    if done:  # leaving: make the last commits synchronous, so a restart replays nothing
        try:
            consumer.commit(offsets=[TopicPartition(t, p, o) for (t, p), o in done.items()], asynchronous=False)
        except KafkaException as exc:
            logs.event(log, "final commit failed; the offsets in Redis cover it", level=30, error=str(exc))


def _commit(consumer: Consumer, messages: list[Message], done: dict[tuple[str, int], int]) -> None:
    offsets = next_offsets(messages)
    done.update({(tp.topic, tp.partition): tp.offset for tp in offsets})
    try:
        consumer.commit(offsets=offsets, asynchronous=True)
    except KafkaException as exc:  # e.g. _STATE during a rebalance: the effects are in Redis already
        if not kafka.retriable(exc.args[0]):
            raise
        logs.event(log, "offset commit skipped; the next commit carries it", level=30, error=str(exc))


def _seek_back(consumer: Consumer, processor: StreamProcessor, messages: list[Message]) -> None:
    firsts = first_offsets(messages)
    if processor.guard is not None:
        processor.guard.forget(firsts)
    for tp in firsts:
        try:
            consumer.seek(tp)
        except KafkaException as exc:  # partition revoked meanwhile: its new owner reads it from the commit
            logs.event(log, "seek back skipped", level=30, topic=tp.topic, partition=tp.partition, error=str(exc))


def _log_stats(processor: StreamProcessor) -> None:
    s = processor.stats
    logs.event(
        log,
        f"Processed {s.messages} messages",
        applied=s.applied,
        replayed=s.replayed,
        unknown_image=s.unknown_image,
        dead_lettered=s.dead_lettered,
        alerts=s.alerts,
        milestones=s.milestones,
        by_topic=json.dumps(s.by_topic),
    )


def next_offsets(messages: list[Message]) -> list[TopicPartition]:
    last: dict[tuple[str, int], int] = {}
    for m in messages:
        key = (m.topic(), m.partition())
        last[key] = max(last.get(key, -1), m.offset())
    return [TopicPartition(t, p, o + 1) for (t, p), o in last.items()]


def first_offsets(messages: list[Message]) -> list[TopicPartition]:
    first: dict[tuple[str, int], int] = {}
    for m in messages:
        key = (m.topic(), m.partition())
        first[key] = min(first.get(key, m.offset()), m.offset())
    return [TopicPartition(t, p, o) for (t, p), o in first.items()]

"""Entry point: ``gourmetgram-inference`` (systemd unit gourmetgram-inference).

INFERENCE_MODE=heuristic|model selects the scorer (a playbook variable sets it); in model mode
the service polls MinIO for artifacts and falls back to the heuristic (mode heuristic_fallback)
while none is loadable.

The loop, like the stream consumer's: take the requests that are there (no waiting for a batch),
decide each on one database connection, commit the offsets asynchronously. No single message stops
it: a request that does not parse, names an unknown image, or makes the scorer fail is
dead-lettered (a bounded copy pointing at the original); Redis, PostgreSQL or the broker being away
makes the request wait and retry with a backoff; only a fatal Kafka client error stops the unit.
"""

from __future__ import annotations

import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType

import redis
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from sqlalchemy.exc import OperationalError

from gourmetgram.common import db, kafka, logs, names
from gourmetgram.common.events import EventError, parse_moderation_request
from gourmetgram.common.redis_state import redis_client
from gourmetgram.common.settings import InferenceSettings
from gourmetgram.common.storage import s3_client
from gourmetgram.inference.model import ModelManager
from gourmetgram.inference.service import Moderator, UnknownImageError

log = logs.get_logger("inference")

BATCH = 100  # requests taken per poll at most (they come one per alert: a backlog only after downtime)


@dataclass
class InferenceStats:
    requests: int = 0
    decisions: int = 0
    dead_lettered: int = 0
    unknown_image: int = 0


def on_kafka_error(err: KafkaError) -> None:
    logs.event(log, "kafka client error", level=40 if err.fatal() else 30, error=str(err), fatal=err.fatal())


def on_commit(err: KafkaError | None, _partitions: list[TopicPartition]) -> None:
    if err is not None:
        logs.event(log, "offset commit failed; the next commit carries it", level=30, error=str(err))


def run() -> None:
    settings = InferenceSettings()  # type: ignore[call-arg]
    logs.setup(settings.log_level, settings.log_format)
    stopping = False

    def _stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)

    client_id = f"gourmetgram-inference-{socket.gethostname()}"
    models: ModelManager | None = None
    if settings.inference_mode == names.MODE_MODEL:
        models = ModelManager(
            s3_client(settings), settings.model_bucket, settings.model_prefix, settings.model_check_interval
        )
        models.start()
    moderator = Moderator(
        redis_client(settings),
        db.engine_for(settings.database_url.get_secret_value(), pool_size=2),
        settings.inference_mode,
        models,
        settings.moderation_threshold,
    )
    bootstrap = settings.kafka_bootstrap_servers
    producer = kafka.durable_producer(bootstrap, client_id, error_cb=on_kafka_error)
    consumer = kafka.manual_commit_consumer(
        bootstrap, settings.kafka_consumer_group, client_id, error_cb=on_kafka_error, on_commit=on_commit
    )
    consumer.subscribe([names.TOPIC_MODERATION_REQUESTS])
    logs.event(
        log,
        "inference service started",
        mode=settings.inference_mode,
        group=settings.kafka_consumer_group,
        model_location=f"s3://{settings.model_bucket}/{settings.model_prefix}",
    )
    stats = InferenceStats()
    code = 0
    try:
        serve(consumer, producer, moderator, stats, lambda: stopping)
    except kafka.FatalKafkaError as exc:
        logs.event(log, "fatal Kafka client error: stopping (systemd restarts the unit)", level=50, error=str(exc))
        code = 1
    finally:
        consumer.close()
        producer.flush(10)
        if models:
            models.stop()
        logs.event(
            log,
            "inference service stopped",
            requests=stats.requests,
            decisions=stats.decisions,
            dead_lettered=stats.dead_lettered,
            unknown_image=stats.unknown_image,
        )
    sys.exit(code)


def serve(
    consumer: Consumer,
    producer: Producer,
    moderator: Moderator,
    stats: InferenceStats,
    should_stop: Callable[[], bool],
) -> None:
    backoff = 1.0
    while not should_stop():
        handled: list[Message] = []
        batch = kafka.next_batch(consumer, BATCH, 1.0, log)
        try:
            for msg in batch:
                handle(msg, producer, moderator, stats)
                handled.append(msg)
            backoff = 1.0
        except (OperationalError, redis.RedisError, RuntimeError, KafkaException) as exc:
            if isinstance(exc, KafkaException) and not kafka.retriable(exc.args[0]):
                raise
            logs.event(log, "decision failed; will retry", level=40, error=str(exc)[:300], retry_in_s=backoff)
            _seek_back(consumer, batch[len(handled) :])
            time.sleep(backoff)
            backoff = min(backoff * 2, 30.0)
        if handled:
            _commit(consumer, handled)


def handle(msg: Message, producer: Producer, moderator: Moderator, stats: InferenceStats) -> None:
    """One request → one decision row or one dead letter. Infrastructure errors propagate (retry)."""
    stats.requests += 1
    try:
        request = parse_moderation_request(msg.value() or b"")
        moderator.handle(request)
        stats.decisions += 1
    except EventError as exc:
        dead_letter(producer, msg, f"malformed moderation request: {exc}", stats)
    except UnknownImageError as exc:
        stats.unknown_image += 1
        dead_letter(producer, msg, f"unknown image: {exc}", stats)
    except (OperationalError, redis.RedisError):
        raise
    except Exception as exc:  # the scorer failed on this request: keep it, move on
        log.exception("decision failed for this request; dead-lettered")
        dead_letter(producer, msg, f"{type(exc).__name__}: {exc}", stats)


def dead_letter(producer: Producer, msg: Message, reason: str, stats: InferenceStats) -> None:
    errors: list[str] = []
    producer.produce(
        names.TOPIC_DEAD_LETTER,
        **kafka.dead_letter_record(msg, reason),
        on_delivery=lambda err, _m: errors.append(str(err)) if err else None,
    )
    if producer.flush(30) or errors:
        raise RuntimeError(f"dead-letter publish not acknowledged: {errors[:1]}")
    stats.dead_lettered += 1
    logs.event(
        log,
        "dead-lettered moderation request",
        level=30,
        error=reason[:300],
        partition=msg.partition(),
        offset=msg.offset(),
        size=len(msg.value() or b""),
    )


def _commit(consumer: Consumer, messages: list[Message]) -> None:
    last: dict[int, int] = {}
    for m in messages:
        last[m.partition()] = max(last.get(m.partition(), -1), m.offset())
    offsets = [TopicPartition(names.TOPIC_MODERATION_REQUESTS, p, o + 1) for p, o in last.items()]
    try:
        consumer.commit(offsets=offsets, asynchronous=True)
    except KafkaException as exc:
        if not kafka.retriable(exc.args[0]):
            raise
        logs.event(log, "offset commit skipped; the next commit carries it", level=30, error=str(exc))


def _seek_back(consumer: Consumer, unhandled: list[Message]) -> None:
    """Every partition back to its first unhandled request (the batch may span partitions)."""
    first: dict[int, int] = {}
    for m in unhandled:
        first.setdefault(m.partition(), m.offset())
    for partition, offset in first.items():
        try:
            consumer.seek(TopicPartition(names.TOPIC_MODERATION_REQUESTS, partition, offset))
        except KafkaException as exc:
            logs.event(log, "seek back skipped", level=30, partition=partition, error=str(exc))


if __name__ == "__main__":
    run()

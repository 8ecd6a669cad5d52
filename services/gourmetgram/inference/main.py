"""Entry point: ``gourmetgram-inference`` (systemd unit gourmetgram-inference).

INFERENCE_MODE=heuristic|model selects the scorer (a playbook variable sets it); in model mode
the service polls MinIO for artifacts and falls back to the heuristic (mode heuristic_fallback)
while none is loadable.
"""

from __future__ import annotations

import signal
import socket
import time
from types import FrameType

import redis
from confluent_kafka import KafkaError, Message, Producer, TopicPartition
from sqlalchemy.exc import OperationalError

from gourmetgram.common import db, kafka, logs, names
from gourmetgram.common.events import EventError, parse_moderation_request
from gourmetgram.common.redis_state import redis_client
from gourmetgram.common.settings import InferenceSettings
from gourmetgram.common.storage import s3_client
from gourmetgram.inference.model import ModelManager
from gourmetgram.inference.service import Moderator

log = logs.get_logger("inference")


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
    producer = kafka.durable_producer(settings.kafka_bootstrap_servers, client_id)
    consumer = kafka.manual_commit_consumer(settings.kafka_bootstrap_servers, settings.kafka_consumer_group, client_id)
    consumer.subscribe([names.TOPIC_MODERATION_REQUESTS])
    logs.event(
        log,
        "inference service started",
        mode=settings.inference_mode,
        group=settings.kafka_consumer_group,
        model_location=f"s3://{settings.model_bucket}/{settings.model_prefix}",
    )
    backoff = 1.0
    try:
        while not stopping:
            msg = consumer.poll(1.0)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() != KafkaError._PARTITION_EOF:
                    logs.event(log, "kafka error", level=30, error=str(msg.error()))
                continue
            try:
                try:
                    request = parse_moderation_request(msg.value() or b"")
                    moderator.store(moderator.decide(request))
                except EventError as exc:
                    _dead_letter(producer, msg, f"malformed moderation request: {exc}")
                except (OperationalError, redis.RedisError):
                    raise
                except Exception as exc:
                    log.exception("decision failed for this request; dead-lettered")
                    _dead_letter(producer, msg, f"{type(exc).__name__}: {exc}")
                consumer.commit(
                    offsets=[TopicPartition(msg.topic(), msg.partition(), msg.offset() + 1)], asynchronous=False
                )
                backoff = 1.0
            except (OperationalError, redis.RedisError, RuntimeError) as exc:
                logs.event(log, "decision failed; will retry", level=40, error=str(exc)[:300], retry_in_s=backoff)
                consumer.seek(TopicPartition(msg.topic(), msg.partition(), msg.offset()))
                time.sleep(backoff)
                backoff = min(backoff * 2, 30.0)
    finally:
        consumer.close()
        producer.flush(10)
        if models:
            models.stop()


def _dead_letter(producer: Producer, msg: Message, reason: str) -> None:
    producer.produce(
        names.TOPIC_DEAD_LETTER,
        value=msg.value(),
        key=msg.key(),
        headers=kafka.dead_letter_headers(msg, reason),
    )
    if producer.flush(30):
        raise RuntimeError("dead-letter publish not acknowledged")
    logs.event(log, "dead-lettered moderation request", level=30, error=reason[:300], offset=msg.offset())


if __name__ == "__main__":
    run()

"""Entry point: ``gourmetgram-stream-consumer`` (systemd unit gourmetgram-stream-consumer)."""

from __future__ import annotations

import signal
import socket
import sys
from types import FrameType

from confluent_kafka import KafkaError
from confluent_kafka.admin import AdminClient

from gourmetgram.common import db, kafka, logs, names
from gourmetgram.common.redis_state import redis_client
from gourmetgram.common.settings import StreamConsumerSettings
from gourmetgram.stream_consumer.loop import consume_forever, on_commit
from gourmetgram.stream_consumer.offsets import OffsetGuard
from gourmetgram.stream_consumer.processor import StreamProcessor

log = logs.get_logger("stream-consumer")


def on_kafka_error(err: KafkaError) -> None:
    """Client-level errors (broker down, coordinator moving) are reported and retried by librdkafka."""
    logs.event(log, "kafka client error", level=40 if err.fatal() else 30, error=str(err), fatal=err.fatal())


def run() -> None:
    settings = StreamConsumerSettings()  # type: ignore[call-arg]
    logs.setup(settings.log_level, settings.log_format)
    stopping = False

    def _stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        logs.event(log, "stopping", signal=signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)

    bootstrap, group = settings.kafka_bootstrap_servers, settings.kafka_consumer_group
    client_id = f"gourmetgram-stream-consumer-{socket.gethostname()}"
    engine = db.engine_for(settings.database_url.get_secret_value(), pool_size=2)
    producer = kafka.durable_producer(bootstrap, client_id, error_cb=on_kafka_error)
    consumer = kafka.manual_commit_consumer(bootstrap, group, client_id, error_cb=on_kafka_error, on_commit=on_commit)
    state = redis_client(settings)
    guard = OffsetGuard(state, AdminClient({"bootstrap.servers": bootstrap}), group)
    processor = StreamProcessor(settings, state, engine, producer, guard, consumer)
    consumer.subscribe(list(names.EVENT_TOPICS), on_assign=guard.on_assign)
    logs.event(
        log,
        "stream consumer started",
        group=group,
        topics=",".join(names.EVENT_TOPICS),
        batch=settings.consumer_batch_size,
        viral=settings.viral_threshold_views_5min,
        suspicious=settings.suspicious_threshold_comments_1min,
        popular=settings.popular_threshold_views_1hr,
    )
    code = 0
    try:
        consume_forever(consumer, processor, settings, lambda: stopping)
    except kafka.FatalKafkaError as exc:
        logs.event(log, "fatal Kafka client error: stopping (systemd restarts the unit)", level=50, error=str(exc))
        code = 1
    finally:
        consumer.close()
        producer.flush(10)
        s = processor.stats
        logs.event(
            log,
            "stream consumer stopped",
            messages=s.messages,
            applied=s.applied,
            replayed=s.replayed,
            unknown_image=s.unknown_image,
            dead_lettered=s.dead_lettered,
        )
    sys.exit(code)


if __name__ == "__main__":
    run()

"""Entry point: ``gourmetgram-stream-consumer`` (systemd unit gourmetgram-stream-consumer)."""

from __future__ import annotations

import signal
import socket
from types import FrameType

from gourmetgram.common import db, kafka, logs, names
from gourmetgram.common.redis_state import redis_client
from gourmetgram.common.settings import StreamConsumerSettings
from gourmetgram.stream_consumer.processor import StreamProcessor, consume_forever

log = logs.get_logger("stream-consumer")


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

    client_id = f"gourmetgram-stream-consumer-{socket.gethostname()}"
    engine = db.engine_for(settings.database_url.get_secret_value(), pool_size=2)
    producer = kafka.durable_producer(settings.kafka_bootstrap_servers, client_id)
    consumer = kafka.manual_commit_consumer(settings.kafka_bootstrap_servers, settings.kafka_consumer_group, client_id)
    consumer.subscribe(list(names.EVENT_TOPICS))
    processor = StreamProcessor(settings, redis_client(settings), engine, producer)
    logs.event(
        log,
        "stream consumer started",
        group=settings.kafka_consumer_group,
        topics=",".join(names.EVENT_TOPICS),
        viral=settings.viral_threshold_views_5min,
        suspicious=settings.suspicious_threshold_comments_1min,
        popular=settings.popular_threshold_views_1hr,
    )
    try:
        consume_forever(consumer, processor, settings, lambda: stopping)
    finally:
        consumer.close()
        producer.flush(10)
        logs.event(log, "stream consumer stopped", messages=processor.stats.messages)


if __name__ == "__main__":
    run()

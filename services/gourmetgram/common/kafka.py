"""Kafka client construction and topic administration (confluent-kafka / librdkafka)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from confluent_kafka import Consumer, KafkaException, Message, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from gourmetgram.common import names


def durable_producer(bootstrap: str, client_id: str, **overrides: Any) -> Producer:
    """acks=all + idempotence: a delivery report with no error means the broker has it."""
    conf: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "client.id": client_id,
        "acks": "all",
        "enable.idempotence": True,
        "compression.type": "lz4",
        "linger.ms": 5,
        "delivery.timeout.ms": 30_000,
        "socket.keepalive.enable": True,
    }
    conf.update(overrides)
    return Producer(conf)


def manual_commit_consumer(bootstrap: str, group: str, client_id: str, **overrides: Any) -> Consumer:
    """At-least-once consumer: offsets are committed by the caller after effects are durable."""
    conf: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "client.id": client_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 10_000,
        "heartbeat.interval.ms": 2_000,
        "max.poll.interval.ms": 300_000,
        "partition.assignment.strategy": "cooperative-sticky",
    }
    conf.update(overrides)
    return Consumer(conf)


def dead_letter_headers(msg: Message, reason: str) -> list[tuple[str, bytes]]:
    """Headers of a message copied to the dead-letter topic: where it came from and why."""
    return [
        ("gg.source.topic", (msg.topic() or "").encode()),
        ("gg.source.partition", str(msg.partition()).encode()),
        ("gg.source.offset", str(msg.offset()).encode()),
        ("gg.error", reason.encode()[:1000]),
    ]


def ensure_topics(
    bootstrap: str,
    topics: Iterable[str] = names.ALL_TOPICS,
    partitions: int = names.TOPIC_PARTITIONS,
    replication: int = 1,
    timeout: float = 30.0,
) -> list[str]:
    """Create missing topics; returns the names created. Existing topics are left alone."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    existing = set(admin.list_topics(timeout=timeout).topics)
    missing = [t for t in topics if t not in existing]
    if not missing:
        return []
    futures = admin.create_topics(
        [
            NewTopic(
                t,
                num_partitions=partitions,
                replication_factor=replication,
                config={"retention.ms": str(names.TOPIC_RETENTION_MS)},
            )
            for t in missing
        ],
        operation_timeout=timeout,
    )
    created = []
    for topic, fut in futures.items():
        try:
            fut.result()
            created.append(topic)
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise
    return created


_probe_log = logging.getLogger("gourmetgram.kafka.probe")
_probe_log.setLevel(logging.ERROR)  # a down broker is the answer, not a log line per retry


def broker_reachable(bootstrap: str, timeout: float = 3.0) -> bool:
    try:
        AdminClient({"bootstrap.servers": bootstrap, "logger": _probe_log}).list_topics(timeout=timeout)
        return True
    except KafkaException:
        return False

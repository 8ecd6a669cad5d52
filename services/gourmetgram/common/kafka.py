"""Kafka client construction and topic administration (confluent-kafka / librdkafka)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicCollection
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic

from gourmetgram.common import logs, names


def durable_producer(bootstrap: str, client_id: str, **overrides: Any) -> Producer:
    """acks=all + idempotence: a delivery report with no error means the broker has it."""
    return Producer({**producer_config(bootstrap, client_id), **overrides})


def producer_config(bootstrap: str, client_id: str) -> dict[str, Any]:
    conf: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "client.id": client_id,
        "acks": "all",
        "enable.idempotence": True,
        "compression.type": "lz4",
        "linger.ms": 5,
        "delivery.timeout.ms": 30_000,
        "socket.keepalive.enable": True,
        "message.max.bytes": names.PRODUCER_MAX_MESSAGE_BYTES,
    }
    return conf


def manual_commit_consumer(bootstrap: str, group: str, client_id: str, **overrides: Any) -> Consumer:
    """At-least-once consumer: offsets are committed by the caller after effects are durable."""
    return Consumer({**consumer_config(bootstrap, group, client_id), **overrides})


def consumer_config(bootstrap: str, group: str, client_id: str) -> dict[str, Any]:
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
        # A fetch returns as soon as one byte is there (the broker holds it at most
        # fetch.wait.max.ms when there is nothing): a lone event is not held back for a batch.
        "fetch.min.bytes": 1,
        "fetch.wait.max.ms": 100,
        # The largest record a topic accepts (names.TOPIC_MAX_MESSAGE_BYTES, 16 MiB) fits librdkafka's
        # defaults: fetch.max.bytes 50 MB, receive.message.max.bytes 100 MB; a fetch always returns
        # at least one whole record batch, however large.
    }
    return conf


def dead_letter_headers(msg: Message, reason: str) -> list[tuple[str, bytes]]:
    """Headers of a message copied to the dead-letter topic: where it came from and why."""
    return [
        ("gg.source.topic", (msg.topic() or "").encode()),
        ("gg.source.partition", str(msg.partition()).encode()),
        ("gg.source.offset", str(msg.offset()).encode()),
        ("gg.error", reason.encode()[:1000]),
    ]


def dead_letter_record(msg: Message, reason: str) -> dict[str, Any]:
    """produce() arguments for the dead-letter copy of ``msg``; it always fits the topic's limit.

    The copy keeps the original headers (up to names.DEAD_LETTER_HEADER_BYTES), the key and the first
    names.DEAD_LETTER_PAYLOAD_BYTES of the value; gg.source.* points at the original record, which
    stays in its topic for the retention period, and gg.payload.* say how much was cut.
    """
    value = msg.value() or b""
    kept: list[tuple[str, bytes]] = []
    budget = names.DEAD_LETTER_HEADER_BYTES
    for name, hval in msg.headers() or []:
        raw = hval or b""
        if len(name) + len(raw) > budget:
            break
        budget -= len(name) + len(raw)
        kept.append((name, raw))
    cut = value[: names.DEAD_LETTER_PAYLOAD_BYTES]
    headers = [
        *kept,
        *dead_letter_headers(msg, reason),
        ("gg.payload.size", str(len(value)).encode()),
        ("gg.payload.truncated", b"true" if len(cut) < len(value) else b"false"),
    ]
    return {"value": cut, "key": (msg.key() or b"")[:1024] or None, "headers": headers}


def retriable(err: KafkaError) -> bool:
    """Broker-side trouble that passes (coordinator moves, restarts, timeouts): retry, never crash."""
    return not err.fatal() and (err.retriable() or err.code() in _TRANSIENT)


_TRANSIENT = frozenset(
    {
        KafkaError._WAIT_COORD,
        KafkaError._TRANSPORT,
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError._TIMED_OUT,
        KafkaError._MSG_TIMED_OUT,
        KafkaError._NO_OFFSET,
        KafkaError._STATE,
        KafkaError._ASSIGNMENT_LOST,
        KafkaError._IN_PROGRESS,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
        KafkaError.NOT_COORDINATOR,
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
        KafkaError.REBALANCE_IN_PROGRESS,
        KafkaError.ILLEGAL_GENERATION,
        KafkaError.UNKNOWN_MEMBER_ID,
        KafkaError.FENCED_INSTANCE_ID,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError.UNKNOWN_TOPIC_ID,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.REQUEST_TIMED_OUT,
        KafkaError.NETWORK_EXCEPTION,
    }
)


class FatalKafkaError(RuntimeError):
    """The client cannot go on (librdkafka fatal error): the service stops and systemd restarts it."""


def next_batch(consumer: Consumer, max_messages: int, wait: float, log: logging.Logger) -> list[Message]:
    """Wait up to ``wait`` s for one message, then take whatever else is already buffered.

    Nothing waits for a batch to fill: a lone event is handed over at once, a backlog in chunks of
    ``max_messages``. Partition EOFs are dropped; retriable errors are logged and absorbed;
    a fatal one raises FatalKafkaError.
    """
    first = consumer.poll(wait)
    if first is None:
        return []
    batch = [first]
    if max_messages > 1:
        batch += consumer.consume(num_messages=max_messages - 1, timeout=0)
    good: list[Message] = []
    for msg in batch:
        err = msg.error()
        if err is None:
            good.append(msg)
        elif err.code() == KafkaError._PARTITION_EOF:
            continue
        elif err.fatal():
            raise FatalKafkaError(str(err))
        else:
            logs.event(log, "kafka consumer error; absorbed", level=30, error=str(err), retriable=retriable(err))
    return good


def topic_config() -> dict[str, str]:
    """Per-topic settings the platform relies on (the kafka/redpanda roles set the same values)."""
    return {"retention.ms": str(names.TOPIC_RETENTION_MS), "max.message.bytes": str(names.TOPIC_MAX_MESSAGE_BYTES)}


def ensure_topics(
    bootstrap: str,
    topics: Iterable[str] = names.ALL_TOPICS,
    partitions: int = names.TOPIC_PARTITIONS,
    replication: int = 1,
    timeout: float = 30.0,
) -> list[str]:
    """Create missing topics and bring existing ones to topic_config(); returns the names created."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    wanted = list(topics)
    existing = set(admin.list_topics(timeout=timeout).topics)
    missing = [t for t in wanted if t not in existing]
    created = []
    if missing:
        futures = admin.create_topics(
            [
                NewTopic(t, num_partitions=partitions, replication_factor=replication, config=topic_config())
                for t in missing
            ],
            operation_timeout=timeout,
        )
        for topic, fut in futures.items():
            try:
                fut.result()
                created.append(topic)
            except KafkaException as exc:
                if "TOPIC_ALREADY_EXISTS" not in str(exc):
                    raise
    _align_configs(admin, [t for t in wanted if t in existing], timeout)
    return created


def _align_configs(admin: AdminClient, topics: list[str], timeout: float) -> None:
    """Topics made before a limit changed get it too (incremental: other settings stay)."""
    if not topics:
        return
    want = topic_config()
    described = admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, t) for t in topics])
    changes = []
    for res, fut in described.items():
        current = fut.result(timeout=timeout)
        entries = [
            ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET)
            for k, v in want.items()
            if k not in current or current[k].value != v
        ]
        if entries:
            changes.append(ConfigResource(ConfigResource.Type.TOPIC, res.name, incremental_configs=entries))
    for fut in admin.incremental_alter_configs(changes).values() if changes else []:
        fut.result(timeout=timeout)


def topic_ids(admin: AdminClient, topics: Iterable[str], timeout: float = 10.0) -> dict[str, str]:
    """Kafka topic ids (a re-created topic gets a new one); topics that do not exist are left out."""
    out: dict[str, str] = {}
    for name, fut in admin.describe_topics(TopicCollection(list(topics)), request_timeout=timeout).items():
        try:
            out[name] = str(fut.result().topic_id)
        except KafkaException:
            continue
    return out


_probe_log = logging.getLogger("gourmetgram.kafka.probe")
_probe_log.setLevel(logging.ERROR)  # a down broker is the answer, not a log line per retry


def broker_reachable(bootstrap: str, timeout: float = 3.0) -> bool:
    try:
        AdminClient({"bootstrap.servers": bootstrap, "logger": _probe_log}).list_topics(timeout=timeout)
        return True
    except KafkaException:
        return False

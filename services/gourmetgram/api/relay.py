"""Outbox relay: publishes event_outbox rows to Kafka in id order, at least once.

One relay publishes at a time: leadership is a PostgreSQL session advisory lock held on a
dedicated connection, so every API worker can run a relay thread (and ``python -m
gourmetgram.api.relay`` can run beside them) while only the lock holder publishes.

Per batch: read up to ``outbox_batch_size`` unsent rows in id order, produce them with the
durable producer (acks=all, idempotence, key = image id), wait for every delivery report,
then set ``sent_at`` only for rows the broker acknowledged. Rows that failed stay unsent and
are retried after a back-off (doubling up to ``outbox_max_backoff``) while the broker is
down. Sent rows are pruned after ``outbox_retention_seconds``.

Guarantees: an acknowledged API write is never lost (its row is committed with the write
and only marked after a broker ack); retries inside one producer session never duplicate
(idempotent producer). A relay that dies between the broker ack and the UPDATE re-sends
those rows after restart, so consumers still deduplicate by ``event_id``.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError, Message, Producer
from sqlalchemy import Connection, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from gourmetgram.common import kafka, logs, names
from gourmetgram.common.db import engine_for
from gourmetgram.common.settings import ApiSettings

log = logs.get_logger("api.relay")

# pg advisory lock key for "the outbox relay leader" (any stable 64-bit number).
RELAY_LOCK_ID = 0x6767_6F75_7462_6F78 & 0x7FFF_FFFF_FFFF_FFFF


class _RateLimit(logging.Filter):
    """At most one record per (logger, message prefix) every ``interval`` seconds."""

    def __init__(self, interval: float = 30.0) -> None:
        super().__init__()
        self.interval = interval
        self.last: dict[str, float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = f"{record.name}:{str(record.msg)[:40]}"
        now = time.monotonic()
        if now - self.last.get(key, -1e9) < self.interval:
            return False
        self.last[key] = now
        return True


# librdkafka's own log lines (connection refused every few hundred ms while the broker is down).
rdkafka_log = logs.get_logger("api.relay.librdkafka")
rdkafka_log.addFilter(_RateLimit())


class RelayStats:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.leader = False
        self.published = 0
        self.failed = 0
        self.batches = 0
        self.pruned = 0
        self.by_topic: dict[str, int] = {}
        self.last_error: str | None = None
        self.last_publish_at: float | None = None

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "relay_leader": self.leader,
                "total_events": self.published,
                "failed_attempts": self.failed,
                "batches": self.batches,
                "pruned": self.pruned,
                "events_by_topic": dict(self.by_topic),
                "last_error": self.last_error,
            }


class OutboxRelay:
    def __init__(
        self,
        settings: ApiSettings,
        engine: Engine | None = None,
        wake: threading.Event | None = None,
        producer_factory: Callable[[], Producer] | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine or engine_for(
            settings.database_url.get_secret_value(), settings.db_pool_size, settings.db_connect_timeout
        )
        self.wake = wake or threading.Event()
        self.stop_event = threading.Event()
        self.stats = RelayStats()
        self._producer_factory = producer_factory or self._default_producer
        self._producer: Producer | None = None
        self._fatal = False
        self._thread: threading.Thread | None = None
        self._last_prune = 0.0
        self._topics_ensured = False
        self._last_down_log = -1e9

    # --- producer ------------------------------------------------------------------------
    def _default_producer(self) -> Producer:
        return kafka.durable_producer(
            self.settings.kafka_bootstrap_servers,
            f"{self.settings.kafka_client_id}-outbox-relay",
            **{
                "delivery.timeout.ms": self.settings.kafka_delivery_timeout_ms,
                "error_cb": self._on_error,
                "log.connection.close": False,
                "logger": rdkafka_log,
            },
        )

    def _on_error(self, err: KafkaError) -> None:
        if err.fatal():
            self._fatal = True
            logs.event(log, "kafka fatal error", level=40, error=err.str())
        elif err.code() in (KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT):
            now = time.monotonic()
            if now - self._last_down_log > 30.0:
                self._last_down_log = now
                logs.event(log, "broker unreachable; events stay in the outbox", level=30, error=err.str())

    def _get_producer(self) -> Producer:
        if self._producer is None or self._fatal:
            if self._producer is not None:
                self._producer.flush(1.0)
            self._fatal = False
            self._producer = self._producer_factory()
        return self._producer

    # --- leadership ------------------------------------------------------------------------
    def _try_lead(self) -> Connection | None:
        conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": RELAY_LOCK_ID}).scalar()
        except Exception:
            conn.close()
            raise
        if got:
            return conn
        conn.close()
        return None

    @staticmethod
    def _release(conn: Connection) -> None:
        with contextlib.suppress(SQLAlchemyError):
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": RELAY_LOCK_ID})
        with contextlib.suppress(SQLAlchemyError):
            conn.close()

    # --- one batch ------------------------------------------------------------------------
    def relay_once(self) -> tuple[int, int]:
        """Publish one batch; returns (acknowledged, failed)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                # payload as its JSON text: publishing it needs no parse + re-serialisation in Python
                # (this thread shares an API worker's GIL with the request handlers).
                text(
                    "SELECT id, topic, key, payload::text AS payload FROM event_outbox "
                    "WHERE sent_at IS NULL ORDER BY id LIMIT :n"
                ),
                {"n": self.settings.outbox_batch_size},
            ).all()
            conn.rollback()
        if not rows:
            return 0, 0
        if not self._topics_ensured:
            try:
                kafka.ensure_topics(self.settings.kafka_bootstrap_servers, names.EVENT_TOPICS, timeout=5.0)
                self._topics_ensured = True
            except Exception as exc:  # broker down: produce() below will queue and time out
                logs.event(log, "ensure_topics failed", level=30, error=type(exc).__name__)
        producer = self._get_producer()
        acked: list[int] = []
        failed: list[tuple[int, str]] = []
        topics: dict[int, str] = {}

        def on_delivery(row_id: int) -> Callable[[KafkaError | None, Message], None]:
            def cb(err: KafkaError | None, _msg: Message) -> None:
                if err is None:
                    acked.append(row_id)
                else:
                    failed.append((row_id, err.str()))
                    if err.fatal():
                        self._fatal = True

            return cb

        for row in rows:
            topics[row.id] = row.topic
            value = row.payload.encode()
            while True:
                try:
                    producer.produce(
                        row.topic,
                        value=value,
                        key=row.key.encode() if row.key else None,
                        on_delivery=on_delivery(row.id),
                    )
                    break
                except BufferError:
                    producer.poll(0.1)
        # Wait for every delivery report (delivery.timeout.ms bounds this while the broker is down).
        while len(producer) > 0:
            producer.flush(1.0)
            if self.stop_event.is_set() and len(producer) > 0:
                producer.flush(5.0)
                break
        if acked:
            with self.engine.begin() as conn:
                conn.execute(text("UPDATE event_outbox SET sent_at = now() WHERE id = ANY(:ids)"), {"ids": acked})
        with self.stats.lock:
            self.stats.published += len(acked)
            self.stats.failed += len(failed)
            self.stats.batches += 1
            for row_id in acked:
                t = topics[row_id]
                self.stats.by_topic[t] = self.stats.by_topic.get(t, 0) + 1
            if acked:
                self.stats.last_publish_at = time.time()
            if failed:
                self.stats.last_error = failed[0][1]
        if failed:
            logs.event(
                log,
                "publish failed; rows stay in the outbox",
                level=30,
                failed=len(failed),
                acked=len(acked),
                error=failed[0][1],
            )
        else:
            logs.event(log, "outbox batch published", level=10, acked=len(acked))
        return len(acked), len(failed)

    def prune(self) -> int:
        with self.engine.begin() as conn:
            n = conn.execute(
                text(
                    "DELETE FROM event_outbox WHERE id IN (SELECT id FROM event_outbox "
                    "WHERE sent_at IS NOT NULL AND sent_at < now() - make_interval(secs => :r) LIMIT 10000)"
                ),
                {"r": self.settings.outbox_retention_seconds},
            ).rowcount
        if n:
            with self.stats.lock:
                self.stats.pruned += n
            logs.event(log, "outbox pruned", rows=n)
        return n

    # --- loop --------------------------------------------------------------------------------
    def run(self) -> None:
        s = self.settings
        backoff = s.outbox_poll_interval
        lock_conn: Connection | None = None
        last_check = 0.0
        while not self.stop_event.is_set():
            try:
                if lock_conn is None:
                    lock_conn = self._try_lead()
                    if lock_conn is None:
                        self.stop_event.wait(max(1.0, s.outbox_poll_interval))
                        continue
                    with self.stats.lock:
                        self.stats.leader = True
                    logs.event(log, "relay leadership acquired")
                    last_check = time.monotonic()
                elif time.monotonic() - last_check > 5.0:
                    lock_conn.execute(text("SELECT 1"))  # a dead connection means the lock is gone
                    last_check = time.monotonic()
                acked, failed = self.relay_once()
                if time.monotonic() - self._last_prune > s.outbox_prune_interval:
                    self._last_prune = time.monotonic()
                    self.prune()
                if failed:
                    self.stop_event.wait(backoff)
                    backoff = min(backoff * 2, s.outbox_max_backoff)
                    continue
                backoff = s.outbox_poll_interval
                if acked < s.outbox_batch_size:
                    self.wake.wait(s.outbox_poll_interval)
                    self.wake.clear()
            except SQLAlchemyError as exc:
                logs.event(log, "relay database error", level=30, error=type(exc).__name__)
                if lock_conn is not None:
                    self._release(lock_conn)
                    lock_conn = None
                    with self.stats.lock:
                        self.stats.leader = False
                self.stop_event.wait(backoff)
                backoff = min(backoff * 2, s.outbox_max_backoff)
            except Exception:
                log.exception("relay iteration failed")
                self.stop_event.wait(backoff)
                backoff = min(backoff * 2, s.outbox_max_backoff)
        if lock_conn is not None:
            self._release(lock_conn)
        with self.stats.lock:
            self.stats.leader = False
        if self._producer is not None:
            self._producer.flush(5.0)
        logs.event(log, "relay stopped", **{k: v for k, v in self.stats.snapshot().items() if k != "events_by_topic"})

    def start(self) -> threading.Thread:
        self._thread = threading.Thread(target=self.run, name="outbox-relay", daemon=True)
        self._thread.start()
        return self._thread

    def stop(self, timeout: float = 10.0) -> None:
        self.stop_event.set()
        self.wake.set()
        if self._thread is not None:
            self._thread.join(timeout)


def main() -> None:
    settings = ApiSettings()
    logs.setup(settings.log_level, settings.log_format)
    relay = OutboxRelay(settings)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: relay.stop_event.set())
    logs.event(log, "standalone relay starting", bootstrap=settings.kafka_bootstrap_servers)
    relay.run()


if __name__ == "__main__":
    main()

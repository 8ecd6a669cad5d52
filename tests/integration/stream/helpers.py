"""Helpers for stream tests: seed Postgres rows, produce events, run services as real processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, TopicPartition
from sqlalchemy import text

from gourmetgram.common import db, kafka, names
from gourmetgram.common.events import CommentEvent, FlagEvent, UploadEvent, ViewEvent
from tests.polling import wait_for  # noqa: F401  (re-exported for the stream tests)


def seed_image(
    database_url: str,
    category: str | None = "Dessert",
    caption: str | None = "cake",
    uploaded_at: datetime | None = None,
) -> tuple[uuid.UUID, uuid.UUID]:
    engine = db.engine_for(database_url)
    user_id, image_id = uuid.uuid4(), uuid.uuid4()
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO users (id, username) VALUES (:id, :u)"), {"id": user_id, "u": f"t_{user_id.hex[:12]}"}
        )
        conn.execute(
            text(
                "INSERT INTO images (id, user_id, s3_url, s3_key, content_type, size_bytes, caption, category,"
                " uploaded_at) VALUES (:id, :uid, :url, :key, 'image/jpeg', 10, :caption, :category, :at)"
            ),
            {
                "id": image_id,
                "uid": user_id,
                "url": f"http://x/{image_id}",
                "key": f"images/{image_id}.jpg",
                "caption": caption,
                "category": category,
                "at": uploaded_at or datetime.now(UTC),
            },
        )
    return user_id, image_id


def upload_event(image_id: uuid.UUID, user_id: uuid.UUID, category: str | None = "Dessert") -> UploadEvent:
    return UploadEvent(
        image_id=image_id,
        user_id=user_id,
        category=category,
        caption="cake",
        uploaded_at=datetime.now(UTC),
        s3_url=f"http://x/{image_id}",
    )


def views(image_id: uuid.UUID, n: int, spread: float = 60.0, end: datetime | None = None) -> list[ViewEvent]:
    end = end or datetime.now(UTC)
    return [ViewEvent(image_id=image_id, viewed_at=end - timedelta(seconds=spread * (n - i) / n)) for i in range(n)]


def comments(image_id: uuid.UUID, user_id: uuid.UUID, n: int, spread: float = 30.0) -> list[CommentEvent]:
    end = datetime.now(UTC)
    return [
        CommentEvent(
            comment_id=uuid.uuid4(),
            image_id=image_id,
            user_id=user_id,
            content="yum",
            created_at=end - timedelta(seconds=spread * (n - i) / n),
        )
        for i in range(n)
    ]


def flag(image_id: uuid.UUID, user_id: uuid.UUID) -> FlagEvent:
    return FlagEvent(
        flag_id=uuid.uuid4(), user_id=user_id, image_id=image_id, reason="spam", created_at=datetime.now(UTC)
    )


def produce(bootstrap: str, events: Iterable[Any], raw: Iterable[tuple[str, bytes]] = ()) -> int:
    producer = kafka.durable_producer(bootstrap, "gg-test-producer")
    n = 0
    for ev in events:
        topic = names.TOPIC_BY_EVENT_TYPE[ev.event_type]
        producer.produce(topic, key=(ev.image_key or "").encode(), value=ev.to_bytes())
        n += 1
        if n % 5000 == 0:
            producer.flush(30)
    for topic, value in raw:
        producer.produce(topic, value=value)
        n += 1
    assert producer.flush(30) == 0
    return n


def read_topic(
    bootstrap: str,
    topic: str,
    timeout: float = 10.0,
    match: Callable[[Any], bool] | None = None,
    expect: int | None = None,
) -> list[Any]:
    """All messages of a topic from the beginning (fresh group), optionally filtered."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"gg-test-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    out: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                if expect is not None and len(out) >= expect:
                    break
                continue
            if match is None or match(msg):
                out.append(msg)
    finally:
        consumer.close()
    return out


def commit_group_at_end(bootstrap: str, group: str, topics: list[str]) -> dict[tuple[str, int], int]:
    """Commit ``group``'s offsets at the current end of ``topics`` (it will read only newer messages).
    Returns those end offsets."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    md = c.list_topics(timeout=10)
    ends: dict[tuple[str, int], int] = {}
    for t in topics:
        for p in md.topics[t].partitions:
            ends[(t, p)] = c.get_watermark_offsets(TopicPartition(t, p), timeout=10)[1]
    c.commit(offsets=[TopicPartition(t, p, o) for (t, p), o in ends.items()], asynchronous=False)
    c.close()
    return ends


_BASE_ENV = ("PATH", "HOME", "LANG", "PYTHONPATH", "VIRTUAL_ENV")


class Service:
    """A platform service as a real child process, its stdout captured to a log file."""

    def __init__(self, module: str, env: dict[str, str], log_path: Path, inherit_env: bool = True) -> None:
        """inherit_env=False: the process gets ``env`` alone (plus PATH/HOME/LANG), as a systemd unit would."""
        self.module, self.env, self.log_path, self.inherit_env = module, env, log_path, inherit_env
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Service:
        base = dict(os.environ) if self.inherit_env else {k: os.environ[k] for k in _BASE_ENV if k in os.environ}
        full_env = {**base, **self.env, "PYTHONUNBUFFERED": "1"}
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", self.module], env=full_env, stdout=self._log, stderr=subprocess.STDOUT
        )
        return self

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if getattr(self, "_log", None):
            self._log.close()

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

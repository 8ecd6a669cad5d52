"""Helpers for the API integration tests (topic reader matching by event id, upload helpers)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from PIL import Image
from sqlalchemy import text

MAX_UPLOAD = 200_000


def infra(*args: str) -> None:
    """tests/infra/servers.sh (path from the infra env file), e.g. infra("stop", "kafka")."""
    env = os.environ.copy()
    # The script rewrites the env file from GG_INFRA_PORT_BASE: keep the ports these tests use.
    env.setdefault("GG_INFRA_PORT_BASE", env["DATABASE_URL"].rsplit(":", 1)[1].split("/", 1)[0])
    subprocess.run([env["GG_INFRA_SCRIPT"], *args], check=True, env=env)


def jpeg_bytes(color: tuple[int, int, int] = (200, 120, 40), size: int = 32) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), color).save(buf, format="JPEG")
    return buf.getvalue()


def make_user(client: httpx.Client) -> str:
    r = client.post("/users/", json={"username": f"u{uuid.uuid4().hex[:12]}"})
    assert r.status_code == 200, r.text
    return str(r.json()["id"])


def upload(
    client: httpx.Client, user_id: str, caption: str = "tasty", category: str = "Bread", data: bytes | None = None
) -> httpx.Response:
    return client.post(
        "/upload/",
        data={"user_id": user_id, "caption": caption, "category": category},
        files={"file": ("dish.jpg", data or jpeg_bytes(), "image/jpeg")},
    )


def outbox_ids(engine: Any, where: str, **params: Any) -> list[str]:
    with engine.connect() as conn:
        return [str(r[0]) for r in conn.execute(text(f"SELECT event_id FROM event_outbox WHERE {where}"), params)]


def wait_sent(engine: Any, event_ids: Iterable[str], timeout: float = 120.0) -> None:
    ids = list(event_ids)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            unsent = conn.execute(
                text(
                    "SELECT count(*) FROM event_outbox WHERE event_id = ANY(CAST(:ids AS uuid[])) AND sent_at IS NULL"
                ),
                {"ids": ids},
            ).scalar()
        if unsent == 0:
            return
        time.sleep(0.5)
    raise AssertionError(f"{unsent} outbox rows still unsent after {timeout}s")


def read_topics(
    bootstrap: str, topics: Iterable[str], want: set[str], timeout: float = 60.0
) -> dict[str, list[dict[str, Any]]]:
    """Read the topics from the start with a fresh group until every partition is at its end and
    every wanted event_id was seen; returns event_id -> list of (topic, payload) for wanted ids."""
    from confluent_kafka import Consumer, KafkaError

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-api-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    consumer.subscribe(list(topics))
    found: dict[str, list[dict[str, Any]]] = {}
    eof: set[tuple[str, int]] = set()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                assignment = consumer.assignment()
                if assignment and want <= set(found) and {(p.topic, p.partition) for p in assignment} <= eof:
                    break
                continue
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    eof.add((msg.topic(), msg.partition()))
                    assignment = consumer.assignment()
                    if want <= set(found) and {(p.topic, p.partition) for p in assignment} <= eof:
                        break
                continue
            eof.discard((msg.topic(), msg.partition()))
            try:  # the topics are shared with other tests, some of which publish malformed messages
                payload = json.loads(msg.value())
            except (TypeError, ValueError):
                continue
            if isinstance(payload, dict) and payload.get("event_id") in want:
                payload["_topic"] = msg.topic()
                payload["_key"] = msg.key().decode() if msg.key() else None
                payload["_offset"] = (msg.partition(), msg.offset())
                found.setdefault(payload["event_id"], []).append(payload)
    finally:
        consumer.close()
    return found


@contextmanager
def image_insert_refused(engine: Any, caption: str, message: str, errcode: str | None = None) -> Iterator[None]:
    """A trigger that makes PostgreSQL refuse the INSERT of an image with this caption (RAISE with
    ``message``, SQLSTATE ``errcode`` or the default P0001); removed afterwards."""
    fn = "gg_test_refuse_" + uuid.uuid4().hex[:10]
    using = f" USING ERRCODE = '{errcode}'" if errcode else ""
    with engine.begin() as conn:
        conn.execute(
            text(
                f"CREATE FUNCTION {fn}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                f"IF NEW.caption = '{caption}' THEN RAISE EXCEPTION '{message}'{using}; END IF; "
                "RETURN NEW; END $$"
            )
        )
        conn.execute(text(f"CREATE TRIGGER {fn} BEFORE INSERT ON images FOR EACH ROW EXECUTE FUNCTION {fn}()"))
    try:
        yield
    finally:
        with engine.begin() as conn:
            conn.execute(text(f"DROP TRIGGER IF EXISTS {fn} ON images"))
            conn.execute(text(f"DROP FUNCTION IF EXISTS {fn}()"))

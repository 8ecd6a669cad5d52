"""Poison suite: no message on any input topic stops the stream consumer or the inference service.

On each of the five input topics, in turn: a 1 MB and a 10 MB message (the topics accept 16 MiB),
not-JSON, wrong shapes, invalid UTF-8 and a valid-looking event for an image that does not exist.
Both services run as real processes with the default settings. Every bad message is accounted
for: its bounded copy is in the dead-letter topic (pointing at its topic/partition/offset), or it
is counted as unknown_image in the consumer's Redis counters; the next valid event reaches Redis
(or gets its decision) within 2 s, and no decision is written for the unknown image.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from gourmetgram.common import db, kafka, names
from gourmetgram.common.events import ModerationRequest
from tests.integration.stream import helpers as h

pytestmark = pytest.mark.integration

MB = 1_000_000


def _big(marker: str, size: int) -> bytes:
    head = json.dumps({"marker": marker, "x": ""})[:-2].encode()  # '{"marker": "...", "x": '
    return head + b'"' + b"a" * (size - len(head) - 3) + b'"}'


def _bad_messages(topic: str, marker: str) -> list[bytes]:
    wrong_type = "upload" if topic != names.TOPIC_UPLOADS else "view"
    return [
        _big(marker, MB),
        _big(marker, 10 * MB),
        b"{not json " + marker.encode(),
        json.dumps({"marker": marker, "event_type": "view", "image_id": 5}).encode(),
        json.dumps({"marker": marker, "event_type": wrong_type}).encode(),
        json.dumps([marker, 1, 2]).encode(),
        b'{"marker": "' + marker.encode() + b'", "content": "\xff\xfe\xfd"}',
    ]


def _unknown_image_event(topic: str) -> bytes:
    ghost, user = uuid.uuid4(), uuid.uuid4()
    if topic == names.TOPIC_MODERATION_REQUESTS:
        return ModerationRequest(
            request_id=uuid.uuid4(), image_id=ghost, trigger="viral", requested_at=datetime.now(UTC)
        ).to_bytes()
    ev = {
        names.TOPIC_UPLOADS: lambda: h.upload_event(ghost, user),
        names.TOPIC_VIEWS: lambda: h.views(ghost, 1)[0],
        names.TOPIC_COMMENTS: lambda: h.comments(ghost, user, 1)[0],
        names.TOPIC_FLAGS: lambda: h.flag(ghost, user),
    }[topic]()
    return ev.to_bytes()


def _produce(bootstrap: str, topic: str, values: list[bytes], marker: str) -> list[tuple[int, int]]:
    """(partition, offset) of each value; the broker must take every one. Each carries a marker header."""
    producer = kafka.durable_producer(bootstrap, "gg-test-poison")
    placed: list[tuple[int, int]] = []
    errors: list[str] = []

    def report(err, msg):  # type: ignore[no-untyped-def]
        if err:
            errors.append(str(err))
        else:
            placed.append((msg.partition(), msg.offset()))

    for value in values:
        producer.produce(topic, value=value, headers=[("gg.test.marker", marker.encode())], on_delivery=report)
        producer.flush(30)
    assert not errors, errors
    return placed


def _dead_letters(
    bootstrap: str, topic: str, placed: list[tuple[int, int]], marker: str
) -> dict[tuple[int, int], dict]:
    """Dead letters of this round: the original headers (the marker) are kept in the copy."""
    wanted = set(placed)

    def mine(m) -> bool:  # type: ignore[no-untyped-def]
        hd = dict(m.headers() or [])
        src = (int(hd.get("gg.source.partition", b"-1")), int(hd.get("gg.source.offset", b"-1")))
        return (
            hd.get("gg.test.marker") == marker.encode()
            and hd.get("gg.source.topic") == topic.encode()
            and src in wanted
        )

    found = h.read_topic(bootstrap, names.TOPIC_DEAD_LETTER, timeout=30, match=mine, expect=len(wanted))
    return {
        (int(dict(m.headers())["gg.source.partition"]), int(dict(m.headers())["gg.source.offset"])): {
            "headers": dict(m.headers()),
            "size": len(m.value() or b""),
        }
        for m in found
    }


def _counts(redis_client, group: str) -> dict[str, int]:  # type: ignore[no-untyped-def]
    return {k: int(v) for k, v in redis_client.hgetall(f"{names.KEY_CONSUMER_COUNTS}:{group}").items()}


def _decisions_for(database_url: str, image_id: uuid.UUID) -> int:
    with db.engine_for(database_url).connect() as conn:
        return int(
            conn.execute(
                text("SELECT count(*) FROM moderation_decisions WHERE image_id = :i"), {"i": image_id}
            ).scalar()
        )


def test_no_message_on_any_input_topic_stops_the_pipeline(
    start_consumer, start_inference, consumer_group, kafka_bootstrap, migrated_db, redis_client
):
    consumer = start_consumer()
    inference = start_inference()
    user_id, image_id = h.seed_image(migrated_db)
    img = str(image_id)
    # Warm-up: both groups joined and serving.
    h.produce(kafka_bootstrap, [h.upload_event(image_id, user_id)])
    h.wait_for(lambda: redis_client.exists(names.key_metadata(img)), 60, "consumer ready")
    warm = ModerationRequest(
        request_id=uuid.uuid4(), image_id=image_id, trigger="viral", requested_at=datetime.now(UTC)
    )
    h.produce(kafka_bootstrap, [], raw=[(names.TOPIC_MODERATION_REQUESTS, warm.to_bytes())])
    h.wait_for(lambda: _decisions_for(migrated_db, image_id) == 1, 60, "inference ready")

    next_valid = {
        names.TOPIC_UPLOADS: (
            lambda: h.upload_event(image_id, user_id, category="Rice"),
            lambda: redis_client.hget(names.key_metadata(img), "category") == "Rice",
        ),
        names.TOPIC_VIEWS: (
            lambda: h.views(image_id, 1)[0],
            lambda: redis_client.get(names.key_total(img, "views")) == "1",
        ),
        names.TOPIC_COMMENTS: (
            lambda: h.comments(image_id, user_id, 1)[0],
            lambda: redis_client.get(names.key_total(img, "comments")) == "1",
        ),
        names.TOPIC_FLAGS: (
            lambda: h.flag(image_id, user_id),
            lambda: redis_client.get(names.key_total(img, "flags")) == "1",
        ),
    }
    for topic in [*names.EVENT_TOPICS, names.TOPIC_MODERATION_REQUESTS]:
        marker = f"poison-{uuid.uuid4().hex}"
        before = _counts(redis_client, consumer_group)
        bad = _bad_messages(topic, marker)
        placed = _produce(kafka_bootstrap, topic, [*bad, _unknown_image_event(topic)], marker)
        if topic == names.TOPIC_MODERATION_REQUESTS:
            request = ModerationRequest(
                request_id=uuid.uuid4(), image_id=image_id, trigger="suspicious", requested_at=datetime.now(UTC)
            )
            h.produce(kafka_bootstrap, [], raw=[(topic, request.to_bytes())])
            h.wait_for(lambda: _decisions_for(migrated_db, image_id) == 2, 2, f"decision after poison on {topic}")
            dead_expected = placed  # the unknown-image request is dead-lettered by inference
        else:
            make, arrived = next_valid[topic]
            h.produce(kafka_bootstrap, [make()])
            h.wait_for(arrived, 2, f"next valid event on {topic}")
            after = _counts(redis_client, consumer_group)
            unknown = after.get("unknown_image", 0) - before.get("unknown_image", 0)
            if topic == names.TOPIC_UPLOADS:
                dead_expected = placed  # an upload is checked against PostgreSQL: dead-lettered
                assert unknown == 0
            else:
                dead_expected = placed[:-1]  # a view/comment/flag is applied (short TTL) and counted
                assert unknown == 1, topic
        dead = _dead_letters(kafka_bootstrap, topic, dead_expected, marker)
        assert set(dead) == set(dead_expected), f"{topic}: not every bad message is in the dead-letter topic"
        for (partition, offset), size in zip(placed, (len(v) for v in bad), strict=False):
            entry = dead[(partition, offset)]
            assert entry["size"] <= names.DEAD_LETTER_PAYLOAD_BYTES
            assert int(entry["headers"]["gg.payload.size"]) == size
            assert entry["headers"]["gg.payload.truncated"] == (
                b"true" if size > names.DEAD_LETTER_PAYLOAD_BYTES else b"false"
            )
        assert consumer.alive and inference.alive, f"a service died on {topic}"
    assert "Traceback" not in consumer.log_text()
    assert "batch failed" not in consumer.log_text() and "decision failed" not in inference.log_text()


def test_unknown_image_gets_no_decision_and_short_lived_state(
    start_consumer, start_inference, consumer_group, kafka_bootstrap, migrated_db, redis_client
):
    """A viral burst for an image that does not exist: alert raised, request dead-lettered, no decision row."""
    from gourmetgram.tools import simulate_viral

    start_consumer()
    inference = start_inference()
    ghost = uuid.uuid4()
    h.produce(kafka_bootstrap, simulate_viral.build_burst(ghost, 110, 240))
    h.wait_for(lambda: "dead-lettered moderation request" in inference.log_text(), 60, "request dead-lettered")
    assert _decisions_for(migrated_db, ghost) == 0
    ttl = redis_client.ttl(names.key_total(str(ghost), "views"))
    assert 0 < ttl <= names.UNKNOWN_IMAGE_STATE_TTL
    assert int(redis_client.hget(f"{names.KEY_CONSUMER_COUNTS}:{consumer_group}", "unknown_image") or 0) == 110
    assert "unknown image" in inference.log_text()

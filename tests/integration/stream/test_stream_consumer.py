"""The stream consumer against real Kafka, Redis and PostgreSQL, run as a real process."""

from __future__ import annotations

import time
import uuid

import pytest
from sqlalchemy import text

from gourmetgram.common import db, names
from tests.integration.stream import helpers as h

pytestmark = pytest.mark.integration


def test_events_build_lab_layout_windows_totals_and_one_milestone(
    start_consumer, kafka_bootstrap, migrated_db, redis_client
):
    user_id, image_id = h.seed_image(migrated_db, category=None)
    evs = [h.upload_event(image_id, user_id, category=None), *h.views(image_id, 12, spread=30)]
    evs += [*h.comments(image_id, user_id, 3), h.flag(image_id, user_id)]
    h.produce(kafka_bootstrap, evs)
    svc = start_consumer()
    img = str(image_id)
    h.wait_for(lambda: redis_client.get(names.key_total(img, "flags")) == "1", 60, "flag total")
    h.wait_for(lambda: redis_client.get(names.key_total(img, "views")) == "12", 30, "view total")
    assert redis_client.type(names.key_views(img)) == "zset"
    now = time.time()
    assert redis_client.zcount(names.key_views(img), now - 300, now) == 12
    assert redis_client.zcount(names.key_comments(img), now - 60, now) == 3
    assert redis_client.get(names.key_total(img, "comments")) == "3"
    meta = redis_client.hgetall(names.key_metadata(img))
    assert meta["category"] == names.UNKNOWN_CATEGORY  # a null category no longer drops the hash
    assert meta["caption_length"] == "4" and meta["user_id"] == str(user_id)
    h.wait_for(lambda: "MILESTONE REACHED!" in svc.log_text(), 30, "milestone log line")
    with db.engine_for(migrated_db).connect() as conn:
        rows = (
            conn.execute(text("SELECT milestone_value FROM image_milestones WHERE image_id = :i"), {"i": image_id})
            .scalars()
            .all()
        )
    assert rows == [10]
    assert svc.alive


def test_killed_mid_stream_then_restarted_counts_each_distinct_event_once(
    start_consumer, kafka_bootstrap, migrated_db, redis_client
):
    images = [h.seed_image(migrated_db)[1] for _ in range(4)]
    per_image = 5000  # enough that the (fast) consumer is still mid-stream when it is killed
    evs = [ev for img in images for ev in h.views(img, per_image, spread=1800)]
    replays = evs[::7]  # the same events produced a second time (same event ids)
    h.produce(kafka_bootstrap, evs + replays)
    svc = start_consumer(CONSUMER_BATCH_SIZE="200")

    def processed() -> int:
        return sum(int(redis_client.get(names.key_total(str(i), "views")) or 0) for i in images)

    h.wait_for(lambda: processed() >= 1000, 120, "consumer to be mid-stream")
    svc.kill()
    mid = processed()
    assert mid < per_image * len(images), "consumer finished before it could be killed; raise the volume"
    start_consumer(CONSUMER_BATCH_SIZE="200")
    h.wait_for(lambda: processed() == per_image * len(images), 180, "all distinct events counted")
    time.sleep(2)  # give replays and any double counting a chance to show
    for img in images:
        assert redis_client.get(names.key_total(str(img), "views")) == str(per_image)
        assert redis_client.zcard(names.key_views(str(img))) == per_image
    with db.engine_for(migrated_db).connect() as conn:
        counts = conn.execute(
            text("SELECT image_id, count(*) FROM image_milestones WHERE image_id = ANY(:ids) GROUP BY image_id"),
            {"ids": images},
        ).all()
    assert sorted(c for _, c in counts) == [3] * len(images)  # 10, 100, 1000 once each


def test_poison_message_goes_to_dead_letter_and_consumer_keeps_going(
    start_consumer, kafka_bootstrap, migrated_db, redis_client
):
    marker = f"poison-{uuid.uuid4().hex}".encode()
    _, image_id = h.seed_image(migrated_db)
    svc = start_consumer()
    h.produce(kafka_bootstrap, [], raw=[(names.TOPIC_VIEWS, b"{not json " + marker)])
    h.produce(kafka_bootstrap, h.views(image_id, 3))
    h.wait_for(lambda: redis_client.get(names.key_total(str(image_id), "views")) == "3", 60, "later events")
    dead = h.read_topic(
        kafka_bootstrap, names.TOPIC_DEAD_LETTER, timeout=15, match=lambda m: marker in (m.value() or b""), expect=1
    )
    assert len(dead) == 1
    headers = dict(dead[0].headers())
    assert headers["gg.source.topic"] == names.TOPIC_VIEWS.encode()
    assert b"not JSON" in headers["gg.error"]
    assert svc.alive
    assert "dead-lettered malformed message" in svc.log_text()


def test_comment_flag_without_image_is_applied_and_later_events_flow(
    start_consumer, kafka_bootstrap, migrated_db, redis_client
):
    user_id, image_id = h.seed_image(migrated_db)
    comment_flag = h.flag(image_id, user_id).model_copy(update={"image_id": None, "comment_id": uuid.uuid4()})
    svc = start_consumer()
    h.produce(kafka_bootstrap, [comment_flag, *h.views(image_id, 2)])
    h.wait_for(lambda: redis_client.get(names.key_total(str(image_id), "views")) == "2", 60, "views after the flag")
    assert redis_client.get(names.key_total(str(image_id), "flags")) is None
    assert "batch failed" not in svc.log_text()


def test_event_refused_by_the_state_script_is_dead_lettered_not_retried_forever(
    kafka_bootstrap, migrated_db, redis_client, monkeypatch
):
    """Fault injection: one event reaches Redis with a corrupt time; the rest of its batch is applied."""
    from confluent_kafka import Consumer

    from gourmetgram.common import kafka
    from gourmetgram.common.settings import StreamConsumerSettings
    from gourmetgram.stream_consumer import processor as proc_mod

    _, image_id = h.seed_image(migrated_db)
    evs = h.views(image_id, 3)
    group = f"gg-test-refused-{uuid.uuid4().hex[:8]}"
    h.commit_group_at_end(kafka_bootstrap, group, [names.TOPIC_VIEWS])
    h.produce(kafka_bootstrap, evs)
    consumer = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": group, "enable.auto.commit": False})
    consumer.subscribe([names.TOPIC_VIEWS])
    messages = []
    deadline = time.monotonic() + 30
    while len(messages) < 3 and time.monotonic() < deadline:
        messages += [m for m in consumer.consume(10, 1.0) if not m.error()]
    consumer.close()
    assert len(messages) == 3
    poisoned = str(evs[1].event_id)
    original = proc_mod._script_event

    def corrupt(ev, msg):  # type: ignore[no-untyped-def]
        out = original(ev, msg)
        if out["id"] == poisoned:
            out["ts"] = "not-a-number"
        return out

    monkeypatch.setattr(proc_mod, "_script_event", corrupt)
    settings = StreamConsumerSettings(kafka_consumer_group=group)  # type: ignore[call-arg]
    producer = kafka.durable_producer(kafka_bootstrap, "gg-test")
    processor = proc_mod.StreamProcessor(settings, redis_client, db.engine_for(migrated_db), producer)
    processor.process(messages)
    assert redis_client.get(names.key_total(str(image_id), "views")) == "2"
    assert processor.stats.dead_lettered == 1
    dead = h.read_topic(
        kafka_bootstrap,
        names.TOPIC_DEAD_LETTER,
        timeout=15,
        match=lambda m: poisoned.encode() in (m.value() or b""),
        expect=1,
    )
    assert len(dead) == 1 and b"refused by state script" in dict(dead[0].headers())["gg.error"]
    processor.process(messages)  # a redelivery of the same batch changes nothing
    assert redis_client.get(names.key_total(str(image_id), "views")) == "2"

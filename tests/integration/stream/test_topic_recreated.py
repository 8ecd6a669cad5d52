"""A topic deleted and re-created (offsets start again at 0) must not make the consumer skip events.

The consumer keeps its applied offsets in Redis, keyed by group; the new topic's offsets are below
them. With the topic-id guard (stream_consumer/offsets.py) the stored offsets of the old topic are
dropped on assignment, a warning names the topic, and every event of the new topic is counted.
"""

from __future__ import annotations

import time
import uuid

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from gourmetgram.common import kafka, names
from tests.integration.stream import helpers as h

pytestmark = pytest.mark.integration

TOPIC = names.TOPIC_FLAGS


def _recreate(bootstrap: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    before = kafka.topic_ids(admin, [TOPIC])[TOPIC]
    admin.delete_topics([TOPIC], operation_timeout=30)[TOPIC].result()
    deadline = time.monotonic() + 60
    while True:  # deletion completes asynchronously; creating too early fails
        try:
            if kafka.ensure_topics(bootstrap, [TOPIC]) == [TOPIC]:
                break
        except KafkaException:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{TOPIC} could not be re-created")
        time.sleep(0.5)
    h.wait_for(lambda: kafka.topic_ids(admin, [TOPIC]).get(TOPIC) not in (None, before), 30, "a new topic id")


def test_recreated_topic_is_read_from_its_start_not_skipped(
    start_consumer, kafka_bootstrap, migrated_db, redis_client, consumer_group
):
    images = [h.seed_image(migrated_db) for _ in range(20)]
    first = [h.flag(img, user) for user, img in images for _ in range(3)]  # 60 flags over every partition
    svc = start_consumer()
    h.produce(kafka_bootstrap, first)

    def flags(img: uuid.UUID) -> int:
        return int(redis_client.get(names.key_total(str(img), "flags")) or 0)

    h.wait_for(lambda: all(flags(img) == 3 for _, img in images), 60, "first flags applied")
    stored = redis_client.hgetall(f"{names.KEY_CONSUMER_OFFSETS}:{consumer_group}")
    assert all(int(stored[f"{TOPIC}:{p}"]) >= 3 for p in range(names.TOPIC_PARTITIONS)), stored
    svc.stop()

    _recreate(kafka_bootstrap)
    user_id, image_id = h.seed_image(migrated_db)
    h.produce(kafka_bootstrap, [h.flag(image_id, user_id) for _ in range(3)])  # offsets 0..2 of one partition
    again = start_consumer()
    h.wait_for(lambda: flags(image_id) == 3, 60, "flags of the re-created topic counted")
    assert "topic re-created" in again.log_text()
    assert again.alive

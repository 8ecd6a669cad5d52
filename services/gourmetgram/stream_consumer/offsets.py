"""Offsets that cannot silently skip: the consumer's applied offsets in Redis against the broker's.

The state script skips a message whose offset is not above the one stored for its partition
(``gg:stream-consumer:offsets:<group>``, field ``<topic>:<partition>``): that is how a replay after
a crash counts nothing twice. If a topic is deleted and re-created, its offsets start again at 0
and every new event below the stored offset would be skipped without a sign. So, whenever
partitions are assigned (and when a partition's offsets are seen going backwards):

- the topic's Kafka topic id is compared with the one stored next to the offsets
  (``gg:stream-consumer:topic-ids:<group>``): a new id means a new topic; its stored offsets are
  dropped, the partitions are read from their beginning, and a warning names the topic;
- a stored offset at or above the partition's end offset (the log went backwards without a new
  id) is dropped with a warning; reading resumes at the group's committed position.

Dropping a stored offset never double counts: views, comments and flags are also keyed by event id.
"""

from __future__ import annotations

import redis
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from gourmetgram.common import kafka, logs, names

log = logs.get_logger("stream-consumer")


class OffsetGuard:
    def __init__(self, redis_client: redis.Redis, admin: AdminClient, group: str) -> None:
        self.redis = redis_client
        self.admin = admin
        self.offsets_key = f"{names.KEY_CONSUMER_OFFSETS}:{group}"
        self.ids_key = f"{names.KEY_CONSUMER_TOPIC_IDS}:{group}"
        self._last: dict[tuple[str, int], int] = {}

    # --- on assignment ------------------------------------------------------------------------
    def on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Rebalance callback: verify before any message of these partitions is handed over."""
        try:
            rewind = self.verify(consumer, partitions)
        except (KafkaException, redis.RedisError) as exc:
            # Not verifiable now (broker or Redis away): the batch loop re-checks when offsets go back.
            logs.event(log, "offset check deferred", level=30, error=str(exc)[:200])
            return
        if rewind:
            for tp in partitions:
                if (tp.topic, tp.partition) in rewind:
                    tp.offset = OFFSET_BEGINNING
            consumer.incremental_assign(partitions)

    def verify(self, consumer: Consumer, partitions: list[TopicPartition]) -> set[tuple[str, int]]:
        """Drop stored offsets that belong to another incarnation of a topic; returns partitions to rewind."""
        topics = sorted({tp.topic for tp in partitions})
        current = kafka.topic_ids(self.admin, topics)
        stored_ids = dict(zip(topics, self.redis.hmget(self.ids_key, topics), strict=True))
        rewind: set[tuple[str, int]] = set()
        for topic in topics:
            new_id, old_id = current.get(topic), stored_ids[topic]
            if new_id is None:
                continue
            if old_id is not None and old_id != new_id:
                dropped = self._drop_topic(topic)
                logs.event(
                    log,
                    "topic re-created: stored offsets dropped, reading it from the beginning",
                    level=30,
                    topic=topic,
                    old_topic_id=old_id,
                    topic_id=new_id,
                    dropped_partitions=dropped,
                )
                rewind |= {(tp.topic, tp.partition) for tp in partitions if tp.topic == topic}
            if old_id != new_id:
                self.redis.hset(self.ids_key, topic, new_id)
        for tp in partitions:
            if (tp.topic, tp.partition) in rewind:
                continue
            self._check_end(consumer, tp.topic, tp.partition)
        for tp in partitions:
            self._last.pop((tp.topic, tp.partition), None)
        return rewind

    def _check_end(self, consumer: Consumer, topic: str, partition: int) -> None:
        field = f"{topic}:{partition}"
        stored = self.redis.hget(self.offsets_key, field)
        if stored is None:
            return
        _low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=5, cached=False)
        if int(stored) >= high:
            self.redis.hdel(self.offsets_key, field)
            logs.event(
                log,
                "partition offsets went backwards: stored offset dropped",
                level=30,
                topic=topic,
                partition=partition,
                stored_offset=int(stored),
                end_offset=high,
            )

    def _drop_topic(self, topic: str) -> int:
        fields = [f for f in self.redis.hkeys(self.offsets_key) if f.rsplit(":", 1)[0] == topic]
        if fields:
            self.redis.hdel(self.offsets_key, *fields)
        return len(fields)

    # --- while consuming -------------------------------------------------------------------
    def went_backwards(self, topic: str, partition: int, offset: int) -> bool:
        """True when this process sees a partition's offset fall without having sought back itself."""
        key = (topic, partition)
        last = self._last.get(key)
        self._last[key] = offset
        return last is not None and offset <= last

    def forget(self, partitions: list[TopicPartition]) -> None:
        """We seek these back ourselves (a batch retry): their offsets will fall, legitimately."""
        for tp in partitions:
            self._last.pop((tp.topic, tp.partition), None)

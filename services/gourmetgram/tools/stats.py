"""``gourmetgram stats`` and ``gourmetgram models``: what is flowing and what is published (lab 4, 7d)."""

from __future__ import annotations

import json
from typing import Any

from confluent_kafka import Consumer, TopicPartition
from sqlalchemy import text

from gourmetgram.common import db, names


def topic_messages(bootstrap: str) -> dict[str, int]:
    """Messages currently retained per topic (sum over partitions of high - low watermark)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "gourmetgram-stats", "enable.auto.commit": False})
    try:
        md = c.list_topics(timeout=10)
        out: dict[str, int] = {}
        for topic in names.ALL_TOPICS:
            meta = md.topics.get(topic)
            if meta is None or meta.error is not None:
                out[topic] = -1
                continue
            total = 0
            for p in meta.partitions:
                low, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
                total += high - low
            out[topic] = total
        return out
    finally:
        c.close()


def table_rows(database_url: str) -> dict[str, int]:
    tables = (*names.EXTRACTED_TABLES, names.TABLE_DECISIONS)
    with db.engine_for(database_url).connect() as conn:
        return {t: int(conn.execute(text(f'SELECT count(*) FROM "{t}"')).scalar_one()) for t in tables}


def stats(database_url: str, bootstrap: str) -> dict[str, Any]:
    return {"topics": topic_messages(bootstrap), "tables": table_rows(database_url)}


def models(s3: Any, bucket: str = names.BUCKET_DATALAKE, prefix: str = names.MODEL_PREFIX) -> dict[str, Any]:
    listing = s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    objects = {o["Key"][len(prefix) :]: o["Size"] for o in listing}
    metadata = None
    if names.METADATA_FILE in objects:
        metadata = json.loads(s3.get_object(Bucket=bucket, Key=prefix + names.METADATA_FILE)["Body"].read())
    return {"location": f"s3://{bucket}/{prefix}", "objects": objects, "metadata": metadata}

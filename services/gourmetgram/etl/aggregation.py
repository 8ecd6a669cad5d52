"""Kafka → Iceberg for one data interval (DAG ``redpanda_event_aggregation``).

What is read: for every partition of the views/comments/flags topics, the messages from the
first offset whose broker timestamp is ≥ ``start − skew`` up to (excluding) the first offset
whose timestamp is ≥ ``end + lateness`` — or the partition's high watermark when no such
message exists yet. Each partition stops at its own end offset; one late message never stops
the others. Which events count is decided by **event time** (``viewed_at`` / ``created_at``):
exactly those with ``start ≤ event_time < end``. Events produced more than ``lateness`` after
the interval end are picked up by re-running (backfilling) the interval.

What is written (both replace the interval's rows, so a re-run or backfill never duplicates):

* ``event_aggregations.events``: one row per distinct ``event_id`` (event_type, image_id,
  event_time) — the features count exact closed windows over it, as Redis ZCOUNT does over the
  same events (member = event_id, so replays are idempotent on both sides);
* ``event_aggregations.{view,comment,flag}_windows_5min``: counts per image and clock-aligned
  5-minute bucket, each bucket belonging to the interval containing its ``window_start``.

Interval bounds are floored to 5-minute boundaries, so buckets are always complete — except
the last bucket of a run whose interval ends after the read (a toggled or triggered run reads
"the last hour up to now", its end rounded up): that bucket holds the events so far and is
replaced by the next run. Every write records how far the events are complete
(``gourmetgram.covered-until`` = min(end, start of the read)) in its snapshot summary; the
moderation ETL caps its cutoff there, so no feature window reaches past the events it can see.
Malformed messages are counted and logged, never fatal.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
from confluent_kafka import OFFSET_END, Consumer, KafkaError, KafkaException, TopicPartition

from gourmetgram.common import names
from gourmetgram.common.events import CommentEvent, EventError, FlagEvent, ViewEvent, parse_event
from gourmetgram.common.logs import event, get_logger
from gourmetgram.etl import catalog as cat
from gourmetgram.etl import lake

log = get_logger("etl.aggregation")

BUCKET = timedelta(seconds=names.BATCH_WINDOW_SECONDS)
EVENT_COLUMNS = ("event_id", "event_type", "image_id", "event_time")
WINDOW_TABLE_BY_TYPE = {
    names.EVENT_TYPE_BY_TOPIC[topic]: identifier for topic, identifier in names.ICEBERG_WINDOW_TABLES.items()
}


@dataclass
class ReadStats:
    messages: int = 0
    in_interval: int = 0
    out_of_interval: int = 0
    malformed: int = 0
    without_image: int = 0
    duplicates: int = 0
    partitions: int = 0
    per_topic: dict[str, int] = field(default_factory=dict)
    covered_until: str = ""  # ISO: the events are complete up to here

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def floor_bucket(ts: datetime) -> datetime:
    epoch = int(ts.timestamp())
    return datetime.fromtimestamp(epoch - epoch % names.BATCH_WINDOW_SECONDS, tz=UTC)


def aligned_interval(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """The interval with both bounds floored to 5-minute boundaries (UTC)."""
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("interval bounds must be timezone-aware")
    if end < start:
        raise ValueError(f"interval end {end} before start {start}")
    return floor_bucket(start), floor_bucket(end)


def _ms(ts: datetime) -> int:
    return int(ts.timestamp() * 1000)


def _event_time(ev: Any) -> datetime:
    if isinstance(ev, ViewEvent):
        return ev.viewed_at
    if isinstance(ev, CommentEvent | FlagEvent):
        return ev.created_at
    raise EventError(f"unexpected event type {type(ev).__name__}")


def read_interval(
    bootstrap: str,
    start: datetime,
    end: datetime,
    topics: Sequence[str] = names.AGGREGATED_TOPICS,
    lateness_seconds: int = 600,
    skew_seconds: int = 60,
    poll_timeout: float = 1.0,
    stall_timeout: float = 60.0,
    consumer_conf: dict[str, Any] | None = None,
) -> tuple[pd.DataFrame, ReadStats]:
    """Events with ``start ≤ event_time < end`` from the topics (see module doc)."""
    conf = {
        "bootstrap.servers": bootstrap,
        "group.id": names.CONSUMER_GROUP_AGGREGATION,  # required by librdkafka; nothing is committed
        "client.id": "gourmetgram-aggregation",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "enable.partition.eof": True,
        "auto.offset.reset": "earliest",
        **(consumer_conf or {}),
    }
    consumer = Consumer(conf)
    stats = ReadStats()
    rows: dict[str, tuple[str, str, str, datetime]] = {}
    try:
        ranges = _offset_ranges(consumer, topics, start, end, lateness_seconds, skew_seconds)
        stats.partitions = len(ranges)
        todo = {tp: stop for tp, (first, stop) in ranges.items() if first < stop}
        if todo:
            consumer.assign([TopicPartition(t, p, ranges[(t, p)][0]) for (t, p) in todo])
        last_progress = time.monotonic()
        while todo:
            msgs = consumer.consume(num_messages=1000, timeout=poll_timeout)
            if not msgs:
                if time.monotonic() - last_progress > stall_timeout:
                    raise TimeoutError(f"no progress reading {sorted(todo)} for {stall_timeout:.0f} s")
                continue
            last_progress = time.monotonic()
            for msg in msgs:
                key = (msg.topic(), msg.partition())
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        _done(consumer, todo, key)
                        continue
                    raise KafkaException(err)
                if key not in todo:
                    continue
                if msg.offset() >= todo[key]:
                    _done(consumer, todo, key)
                    continue
                if msg.offset() == todo[key] - 1:
                    _done(consumer, todo, key)
                stats.messages += 1
                _accept(msg, start, end, rows, stats)
    finally:
        consumer.close()
    frame = pd.DataFrame(list(rows.values()), columns=list(EVENT_COLUMNS))
    frame["event_time"] = pd.to_datetime(frame["event_time"], utc=True).dt.as_unit("us")
    frame = frame.sort_values(["event_time", "event_id"], kind="stable").reset_index(drop=True)
    return frame, stats


def _done(consumer: Consumer, todo: dict[tuple[str, int], int], key: tuple[str, int]) -> None:
    if todo.pop(key, None) is not None:
        consumer.pause([TopicPartition(*key)])


def _offset_ranges(
    consumer: Consumer,
    topics: Iterable[str],
    start: datetime,
    end: datetime,
    lateness_seconds: int,
    skew_seconds: int,
) -> dict[tuple[str, int], tuple[int, int]]:
    """Per partition: [first offset with timestamp ≥ start − skew, first offset with timestamp ≥
    end + lateness, else the high watermark)."""
    ranges: dict[tuple[str, int], tuple[int, int]] = {}
    for topic in topics:
        meta = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if meta is None or meta.error is not None:
            event(log, "topic_missing", level=logging.WARNING, topic=topic, error=meta and meta.error)
            continue
        parts = sorted(meta.partitions)
        lo_ms = _ms(start) - skew_seconds * 1000
        hi_ms = _ms(end) + lateness_seconds * 1000
        firsts = consumer.offsets_for_times([TopicPartition(topic, p, lo_ms) for p in parts], timeout=10)
        stops = consumer.offsets_for_times([TopicPartition(topic, p, hi_ms) for p in parts], timeout=10)
        for p, first_tp, stop_tp in zip(parts, firsts, stops, strict=True):
            if first_tp.error or stop_tp.error:
                raise KafkaException(first_tp.error or stop_tp.error)
            _low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            first = high if first_tp.offset in (OFFSET_END, -1) else first_tp.offset
            stop = high if stop_tp.offset in (OFFSET_END, -1) else stop_tp.offset
            ranges[(topic, p)] = (first, min(stop, high))
    return ranges


def _accept(
    msg: Any, start: datetime, end: datetime, rows: dict[str, tuple[str, str, str, datetime]], stats: ReadStats
) -> None:
    topic = msg.topic()
    try:
        ev = parse_event(msg.value(), topic)
        ts = _event_time(ev)
    except EventError as exc:
        stats.malformed += 1
        event(
            log,
            "malformed_message_skipped",
            level=logging.WARNING,
            topic=topic,
            partition=msg.partition(),
            offset=msg.offset(),
            error=str(exc)[:300],
        )
        return
    if ev.image_key is None:
        stats.without_image += 1  # e.g. a flag on a comment: no image window to count
        return
    if not (start <= ts < end):
        stats.out_of_interval += 1
        return
    event_id = str(ev.event_id)
    if event_id in rows:
        stats.duplicates += 1  # a replayed message: the same event counts once (as ZADD member)
        return
    stats.in_interval += 1
    etype = names.EVENT_TYPE_BY_TOPIC[topic]
    stats.per_topic[etype] = stats.per_topic.get(etype, 0) + 1
    rows[event_id] = (event_id, etype, ev.image_key, ts)


# --- frames for the tables ----------------------------------------------------------------------
def events_frame(events: pd.DataFrame, processed_at: datetime) -> pd.DataFrame:
    out = events.loc[:, list(EVENT_COLUMNS)].copy()
    out["processed_at"] = processed_at
    return out


def window_frame(events: pd.DataFrame, event_type: str, processed_at: datetime) -> pd.DataFrame:
    """Counts per (image, clock-aligned 5-minute bucket) for one event type."""
    sub = events[events["event_type"] == event_type]
    if sub.empty:
        return pd.DataFrame(
            {
                "image_id": pd.Series(dtype=str),
                "window_start": pd.Series(dtype="datetime64[us, UTC]"),
                "window_end": pd.Series(dtype="datetime64[us, UTC]"),
                "event_count": pd.Series(dtype="int64"),
                "processed_at": pd.Series(dtype="datetime64[us, UTC]"),
            }
        )
    starts = sub["event_time"].dt.floor(f"{names.BATCH_WINDOW_SECONDS}s")
    counts = (
        sub.assign(window_start=starts)
        .groupby(["image_id", "window_start"], sort=True)
        .size()
        .rename("event_count")
        .reset_index()
    )
    counts["window_end"] = counts["window_start"] + BUCKET
    counts["processed_at"] = processed_at
    return counts[["image_id", "window_start", "window_end", "event_count", "processed_at"]]


# --- Iceberg writes -------------------------------------------------------------------------------
COVERED_UNTIL = "gourmetgram.covered-until"


def ceil_bucket(ts: datetime) -> datetime:
    floored = floor_bucket(ts)
    return floored if floored == ts else floored + BUCKET


def covered_until(catalog: Any, identifier: str = names.ICEBERG_EVENTS) -> datetime | None:
    """The latest instant up to which the table's events are complete (max over its snapshots'
    ``gourmetgram.covered-until``), or None when the table or the property does not exist."""
    table = cat.load_table(catalog, identifier)
    if table is None:
        return None
    marks = [s.summary.get(COVERED_UNTIL) for s in table.snapshots() if s.summary is not None]
    found = [datetime.fromisoformat(m) for m in marks if m]
    return max(found) if found else None


def replace_interval(
    catalog: Any,
    identifier: str,
    schema: Any,
    frame: pd.DataFrame,
    column: str,
    start: datetime,
    end: datetime,
    covered: datetime | None = None,
) -> int:
    """Replace the rows with ``start ≤ column < end`` by ``frame`` (one overwrite commit).
    ``covered`` (default ``end``): the events are complete up to there."""
    outside = frame[(frame[column] < start) | (frame[column] >= end)]
    if not outside.empty:
        raise ValueError(f"{len(outside)} rows of {identifier} fall outside [{start}, {end})")
    table = cat.ensure_table(catalog, identifier, schema)
    mark = min(covered or end, end).astimezone(UTC).isoformat()
    table.overwrite(
        cat.to_arrow(frame, schema),
        overwrite_filter=cat.interval_filter(column, start, end),
        snapshot_properties={COVERED_UNTIL: mark},
    )
    event(log, "interval_replaced", table=identifier, start=start.isoformat(), end=end.isoformat(), rows=len(frame))
    return len(frame)


def write_events(
    catalog: Any,
    events: pd.DataFrame,
    start: datetime,
    end: datetime,
    processed_at: datetime,
    covered: datetime | None = None,
) -> int:
    frame = events_frame(events, processed_at)
    return replace_interval(catalog, names.ICEBERG_EVENTS, cat.EVENTS_SCHEMA, frame, "event_time", start, end, covered)


def write_windows(
    catalog: Any, event_type: str, events: pd.DataFrame, start: datetime, end: datetime, processed_at: datetime
) -> int:
    return replace_interval(
        catalog,
        WINDOW_TABLE_BY_TYPE[event_type],
        cat.WINDOW_SCHEMA,
        window_frame(events, event_type, processed_at),
        "window_start",
        start,
        end,
    )


# --- staging between DAG tasks (events as Parquet on MinIO, not through XCom) -------------------------
def staging_key(start: datetime, end: datetime) -> str:
    fmt = "%Y%m%dT%H%M%SZ"
    return f"staging/event_aggregations/{start.strftime(fmt)}_{end.strftime(fmt)}/events.parquet"


def stage_events(s3: Any, bucket: str, events: pd.DataFrame, start: datetime, end: datetime) -> str:
    lake.ensure_bucket(s3, bucket)
    table = cat.to_arrow(events_frame(events, datetime.now(UTC)), cat.EVENTS_SCHEMA)
    return lake.put_parquet(s3, bucket, staging_key(start, end), table)


def load_staged(s3: Any, uri: str) -> pd.DataFrame:
    frame = lake.get_parquet(s3, *lake.split_uri(uri)).to_pandas()
    frame["event_time"] = pd.to_datetime(frame["event_time"], utc=True).dt.as_unit("us")
    return frame.loc[:, list(EVENT_COLUMNS)]


# --- one call for everything (tests, CLI) ---------------------------------------------------------
def consume(settings: Any, start: datetime, end: datetime) -> tuple[pd.DataFrame, ReadStats, datetime, datetime]:
    """Read the interval (bounds floored to 5 minutes). ``stats.covered_until``: min(end, the
    start of the read) — later events may still be on their way."""
    read_at = datetime.now(UTC)
    start, end = aligned_interval(start, end)
    events, stats = read_interval(
        settings.kafka_bootstrap_servers,
        start,
        end,
        lateness_seconds=settings.aggregation_lateness_seconds,
        skew_seconds=settings.aggregation_skew_seconds,
        poll_timeout=settings.aggregation_poll_timeout,
    )
    stats.covered_until = min(end, read_at).isoformat()
    event(log, "interval_read", start=start.isoformat(), end=end.isoformat(), **stats.as_dict())
    return events, stats, start, end


def run_interval(settings: Any, start: datetime, end: datetime, catalog: Any | None = None) -> dict[str, Any]:
    events, stats, start, end = consume(settings, start, end)
    catalog = catalog or cat.load_catalog(settings)
    processed_at = datetime.now(UTC)
    covered = datetime.fromisoformat(stats.covered_until)
    written = {names.ICEBERG_EVENTS: write_events(catalog, events, start, end, processed_at, covered)}
    for etype, identifier in WINDOW_TABLE_BY_TYPE.items():
        written[identifier] = write_windows(catalog, etype, events, start, end, processed_at)
    return {"start": start.isoformat(), "end": end.isoformat(), "stats": stats.as_dict(), "written": written}

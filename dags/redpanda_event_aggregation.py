"""Kafka events → Iceberg tables for one hour (lab step 6c).

consume_and_aggregate_events reads exactly this run's data interval from the views, comments
and flags topics (per-partition timestamp offsets) and stages the events as Parquet on MinIO;
the write tasks then REPLACE the interval's rows of event_aggregations.events and the three
*_windows_5min tables, so retries, re-runs and backfills never duplicate. Logic:
gourmetgram.etl.aggregation.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import dag, get_current_context, task

from gourmetgram.common import names


def _interval() -> tuple[datetime, datetime]:
    """The run's data interval; a run without one — Airflow 3 gives toggled, triggered and (with
    the default trigger timetables) scheduled runs a zero-length interval at the run time — reads
    the hour up to the run time, its end rounded up to the next 5-minute boundary (the events so
    far of the last bucket; the next run replaces it)."""
    from gourmetgram.etl.aggregation import ceil_bucket

    ctx = get_current_context()
    start, end = ctx.get("data_interval_start"), ctx.get("data_interval_end")
    if start is None or end is None or start >= end:
        end = ceil_bucket(end or datetime.now(UTC))
        start = end - timedelta(hours=1)
    return start.astimezone(UTC), end.astimezone(UTC)


@dag(
    dag_id=names.DAG_AGGREGATION,
    schedule=timedelta(hours=1),
    start_date=datetime(2025, 1, 1, tzinfo=UTC),
    catchup=False,  # backfills are explicit (airflow backfill create); each interval replaces its rows
    max_active_runs=1,
    tags=["etl", "kafka", "iceberg", "windowing"],
    default_args={"owner": "gourmetgram", "retries": 2, "retry_delay": timedelta(minutes=5)},
    doc_md=__doc__,
)
def redpanda_event_aggregation():
    @task
    def consume_and_aggregate_events() -> dict:
        from gourmetgram.common.storage import s3_client
        from gourmetgram.etl import aggregation
        from gourmetgram.etl.config import settings_from_airflow

        settings = settings_from_airflow()
        events, stats, start, end = aggregation.consume(settings, *_interval())
        uri = aggregation.stage_events(s3_client(settings), settings.datalake_bucket, events, start, end)
        return {"uri": uri, "start": start.isoformat(), "end": end.isoformat(), "stats": stats.as_dict()}

    def write(staged: dict, event_type: str | None) -> int:
        from gourmetgram.common.storage import s3_client
        from gourmetgram.etl import aggregation, catalog
        from gourmetgram.etl.config import settings_from_airflow

        settings = settings_from_airflow()
        events = aggregation.load_staged(s3_client(settings), staged["uri"])
        start, end = datetime.fromisoformat(staged["start"]), datetime.fromisoformat(staged["end"])
        iceberg, now = catalog.load_catalog(settings), datetime.now(UTC)
        if event_type is None:
            covered = datetime.fromisoformat(staged["stats"]["covered_until"])
            return aggregation.write_events(iceberg, events, start, end, now, covered)
        return aggregation.write_windows(iceberg, event_type, events, start, end, now)

    @task
    def write_events(staged: dict) -> int:
        return write(staged, None)

    @task
    def write_view_windows(staged: dict) -> int:
        return write(staged, "view")

    @task
    def write_comment_windows(staged: dict) -> int:
        return write(staged, "comment")

    @task
    def write_flag_windows(staged: dict) -> int:
        return write(staged, "flag")

    staged = consume_and_aggregate_events()
    [write_events(staged), write_view_windows(staged), write_comment_windows(staged), write_flag_windows(staged)]


redpanda_event_aggregation()

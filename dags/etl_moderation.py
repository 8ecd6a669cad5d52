"""Postgres → features → moderation.training_data (lab step 6d).

extract_data      users, images, comments, flags, image_milestones (rows ≤ cutoff) to
                  s3://gourmetgram-datalake/raw/<table>/ds=<date>/ (a re-run replaces its date)
transform_features the 26 features at 0, 5 and 30 min after upload — the shared
                  gourmetgram.common.features code inference uses — from exact windows over
                  event_aggregations.events (run redpanda_event_aggregation first); label = flagged
                  within the label horizon; images younger than the horizon are left out
load_iceberg      overwrite moderation.training_data (re-running leaves the same rows)

The cutoff is the ``cutoff`` param, else the run's data interval end (Airflow 3 gives toggled and
triggered runs a zero-length interval at the run time), capped at the instant
event_aggregations.events is complete (the aggregation run before it read the events up to then).
``label_horizon_hours`` (param, else env LABEL_HORIZON_HOURS, else 5 minutes:
gourmetgram.common.names.LABEL_HORIZON_MINUTES) — images younger than it wait for their label.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import Param, dag, get_current_context, task

from gourmetgram.common import names


@dag(
    dag_id=names.DAG_ETL,
    description="ETL pipeline for moderation model training data",
    schedule=timedelta(days=1),
    start_date=datetime(2025, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    tags=["etl", "postgres", "iceberg", "features"],
    default_args={"owner": "gourmetgram", "retries": 1, "retry_delay": timedelta(minutes=5)},
    params={
        "label_horizon_hours": Param(
            None, type=["null", "number"], description=f"default: env or {names.LABEL_HORIZON_MINUTES} min"
        ),
        "cutoff": Param(None, type=["null", "string"], description="ISO timestamp; default: interval end"),
    },
    doc_md=__doc__,
)
def etl_moderation():
    @task
    def extract_data() -> dict:
        from gourmetgram.common.storage import s3_client
        from gourmetgram.etl import catalog, moderation
        from gourmetgram.etl.config import settings_from_airflow

        ctx = get_current_context()
        cutoff_param = ctx["params"].get("cutoff")
        if cutoff_param:
            cutoff = datetime.fromisoformat(cutoff_param)
        else:  # a toggled or triggered run: its interval is zero-length and ends at the run time
            cutoff = ctx.get("data_interval_end") or datetime.now(UTC)
        settings = settings_from_airflow()
        cutoff = moderation.effective_cutoff(catalog.load_catalog(settings), cutoff.astimezone(UTC))
        logical = ctx.get("logical_date")
        ds = (logical or cutoff).astimezone(UTC).date().isoformat()
        return moderation.extract(settings, s3_client(settings), ds, cutoff)

    @task
    def transform_features(extracted: dict) -> dict:
        from gourmetgram.common.storage import s3_client
        from gourmetgram.etl import catalog, moderation
        from gourmetgram.etl.config import settings_from_airflow

        settings = settings_from_airflow()
        hours = get_current_context()["params"].get("label_horizon_hours") or settings.label_horizon_hours
        return moderation.transform(
            settings, s3_client(settings), catalog.load_catalog(settings), extracted, timedelta(hours=float(hours))
        )

    @task
    def load_iceberg(transformed: dict) -> int:
        from gourmetgram.common.storage import s3_client
        from gourmetgram.etl import catalog, moderation
        from gourmetgram.etl.config import settings_from_airflow

        settings = settings_from_airflow()
        return moderation.load(s3_client(settings), catalog.load_catalog(settings), transformed)

    load_iceberg(transform_features(extract_data()))


etl_moderation()

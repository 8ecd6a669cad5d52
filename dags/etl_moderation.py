"""Postgres → features → moderation.training_data (lab step 6d).

extract_data      users, images, comments, flags, image_milestones (rows ≤ cutoff) to
                  s3://gourmetgram-datalake/raw/<table>/ds=<date>/ (a re-run replaces its date)
transform_features the 26 features at 0, 5 and 30 min after upload — the shared
                  gourmetgram.common.features code inference uses — from exact windows over
                  event_aggregations.events (run redpanda_event_aggregation first); label = flagged
                  within the label horizon; images younger than the horizon are left out
load_iceberg      overwrite moderation.training_data (re-running leaves the same rows)

The cutoff is the run's data interval end (a manual "Trigger DAG" run ends now) or the
``cutoff`` param. ``label_horizon_hours`` (param, else env LABEL_HORIZON_HOURS, else 24) can be
made short in a lab so that minutes of generated data already yield labelled rows.
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
        "label_horizon_hours": Param(None, type=["null", "number"], description="default: env or 24"),
        "cutoff": Param(None, type=["null", "string"], description="ISO timestamp; default: interval end"),
    },
    doc_md=__doc__,
)
def etl_moderation():
    @task
    def extract_data() -> dict:
        from gourmetgram.common.storage import s3_client
        from gourmetgram.etl import moderation
        from gourmetgram.etl.config import settings_from_airflow

        ctx = get_current_context()
        cutoff_param = ctx["params"].get("cutoff")
        if cutoff_param:
            cutoff = datetime.fromisoformat(cutoff_param)
        else:
            cutoff = ctx.get("data_interval_end") or datetime.now(UTC)
        cutoff = cutoff.astimezone(UTC)
        logical = ctx.get("logical_date")
        ds = (logical or cutoff).astimezone(UTC).date().isoformat()
        settings = settings_from_airflow()
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

"""The two DAGs under real Airflow 3.3.2 (`airflow dags test`, Postgres metadata DB) against the
loopback servers: events in Kafka → redpanda_event_aggregation → window rows; a seeded history →
etl_moderation → hand-checked training rows; each DAG run twice leaves the same rows.

Needs: tests/infra/servers.sh start, tests/infra/airflow.sh install && dbinit.
DAG connections come from AIRFLOW_CONN_* (gourmetgram_postgres, gourmetgram_minio); the DB and S3
credentials are removed from the tasks' environment to prove nothing else is used.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy.engine import make_url

from gourmetgram.common import names

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "integration" / "etl"))
from helpers import assert_hand_checked, produce, seed, view  # noqa: E402

pytestmark = [pytest.mark.airflow, pytest.mark.integration]
DURATIONS: dict[str, float] = {}


@pytest.fixture(scope="module")
def airflow_env(etl_settings, topics):
    out = subprocess.run(
        [str(REPO / "tests/infra/airflow.sh"), "env"], capture_output=True, text=True, check=True
    ).stdout
    env = dict(os.environ)
    for line in out.splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        env[key] = value
    if not Path(env["AIRFLOW_PATH"]).exists():
        pytest.skip("Airflow not installed: tests/infra/airflow.sh install")
    url = make_url(etl_settings.database_url.get_secret_value())
    env["AIRFLOW_CONN_GOURMETGRAM_POSTGRES"] = json.dumps(
        {
            "conn_type": "postgres",
            "host": url.host,
            "port": url.port,
            "login": url.username,
            "password": url.password,
            "schema": url.database,
        }
    )
    env["AIRFLOW_CONN_GOURMETGRAM_MINIO"] = json.dumps(
        {
            "conn_type": "aws",
            "login": etl_settings.aws_access_key_id,
            "password": etl_settings.aws_secret_access_key.get_secret_value(),
            "extra": {"endpoint_url": etl_settings.s3_endpoint_url},
        }
    )
    # The seeded history is produced now with event times up to 100 min ago: allow that lateness.
    env["AGGREGATION_LATENESS_SECONDS"] = str(3 * 3600)
    for var in ("DATABASE_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "S3_ENDPOINT_URL"):
        env.pop(var, None)
    return env


def dags_test(env, dag_id: str, logical: datetime, conf: dict | None = None) -> str:
    cmd = [env["AIRFLOW_PATH"], "dags", "test", dag_id, logical.isoformat()]
    if conf:
        cmd += ["--conf", json.dumps(conf)]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    DURATIONS.setdefault(dag_id, 0.0)
    DURATIONS[dag_id] = max(DURATIONS[dag_id], time.monotonic() - t0)
    print(f"airflow dags test {dag_id}: {time.monotonic() - t0:.1f} s")
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-5000:]
    assert "state=success" in log, log[-5000:]
    return log


def _scan(iceberg, identifier, image_ids):
    frame = iceberg.load_table(identifier).scan().to_pandas()
    frame = frame[frame.image_id.isin(image_ids)].drop(columns=["processed_at"], errors="ignore")
    return frame.sort_values(list(frame.columns[:3])).reset_index(drop=True)


def test_aggregation_dag(airflow_env, etl_settings, iceberg) -> None:
    from gourmetgram.etl.aggregation import floor_bucket

    # `dags test` makes a manual run whose data interval is [logical − 1 h, logical)
    logical = floor_bucket(datetime.now(UTC)) + timedelta(minutes=5)
    start = logical - timedelta(hours=1)
    a = str(uuid.uuid4())
    produce(
        etl_settings.kafka_bootstrap_servers,
        [view(a, start + timedelta(minutes=10, seconds=s)) for s in range(0, 300, 20)]  # 15 in one bucket
        + [view(a, start + timedelta(minutes=50)) for _ in range(3)]
        + [view(a, logical + timedelta(seconds=1))],  # next interval
    )
    dags_test(airflow_env, names.DAG_AGGREGATION, logical)
    windows = _scan(iceberg, names.ICEBERG_WINDOW_TABLES[names.TOPIC_VIEWS], [a])
    got = [(r.window_start.to_pydatetime(), r.event_count) for r in windows.itertuples()]
    assert got == [(start + timedelta(minutes=10), 15), (start + timedelta(minutes=50), 3)]
    dags_test(airflow_env, names.DAG_AGGREGATION, logical)
    pd.testing.assert_frame_equal(windows, _scan(iceberg, names.ICEBERG_WINDOW_TABLES[names.TOPIC_VIEWS], [a]))
    assert len(_scan(iceberg, names.ICEBERG_EVENTS, [a])) == 18


def test_etl_moderation_dag(airflow_env, etl_settings, iceberg) -> None:
    from gourmetgram.etl.aggregation import floor_bucket

    now = floor_bucket(datetime.now(UTC))
    base = now - timedelta(minutes=100)
    seeded = seed(etl_settings, base)
    produce(etl_settings.kafka_bootstrap_servers, seeded["events"])
    # the events' interval: two aggregation runs (hours ending at base+20 min and base+80 min)
    for logical in (base + timedelta(minutes=20), base + timedelta(minutes=80)):
        dags_test(airflow_env, names.DAG_AGGREGATION, logical)
    conf = {"label_horizon_hours": 40 / 60, "cutoff": seeded["cutoff"].isoformat()}
    dags_test(airflow_env, names.DAG_ETL, now, conf)
    ids = list(seeded["ids"].values())
    rows = _scan(iceberg, names.ICEBERG_TRAINING_DATA, ids)
    assert_hand_checked(rows, seeded["ids"], base)
    dags_test(airflow_env, names.DAG_ETL, now, conf)
    pd.testing.assert_frame_equal(rows, _scan(iceberg, names.ICEBERG_TRAINING_DATA, ids))
    print("DAG test durations (s):", {k: round(v, 1) for k, v in DURATIONS.items()})

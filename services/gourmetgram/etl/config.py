"""Settings for the batch jobs, from Airflow connections when running inside Airflow, else env.

Environment (the same names the services use): DATABASE_URL, S3_ENDPOINT_URL,
AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, KAFKA_BOOTSTRAP_SERVERS, plus the ETL knobs below.
Inside Airflow, the connections ``gourmetgram_postgres`` (Postgres) and ``gourmetgram_minio``
(AWS type: login/password = key/secret, extra ``endpoint_url``) take precedence when defined.
Nothing is hard-coded: a missing credential fails with the variable's name.
"""

from __future__ import annotations

import logging
import os
from typing import Any
from urllib.parse import quote

from pydantic import Field

from gourmetgram.common import names
from gourmetgram.common.logs import event, get_logger
from gourmetgram.common.settings import DatabaseSettings, KafkaSettings, LogSettings, S3Settings

log = get_logger("etl.config")


class EtlSettings(DatabaseSettings, KafkaSettings, S3Settings, LogSettings):
    datalake_bucket: str = names.BUCKET_DATALAKE
    warehouse: str = names.WAREHOUSE_URI
    # Label = flagged within this many hours after upload (short values make a lab run yield rows).
    label_horizon_hours: float = Field(float(names.LABEL_HORIZON_HOURS), gt=0)
    # Aggregation: how long after the interval end a message may still be produced and count,
    # and how much producer clock skew to tolerate before the interval start.
    aggregation_lateness_seconds: int = Field(600, ge=0)
    aggregation_skew_seconds: int = Field(60, ge=0)
    aggregation_poll_timeout: float = Field(1.0, gt=0)


def settings_from_env(**overrides: Any) -> EtlSettings:
    return EtlSettings(**overrides)  # type: ignore[call-arg]


def _airflow_connection(conn_id: str) -> Any | None:
    """The Airflow connection, or None when not running in Airflow or the connection is not
    defined. Any other error (e.g. the secrets backend is down) propagates."""
    try:
        from airflow.sdk import BaseHook  # Airflow 3
    except ImportError:
        return None
    try:
        from airflow.exceptions import AirflowNotFoundException
    except ImportError:  # pragma: no cover
        AirflowNotFoundException = LookupError  # type: ignore[misc,assignment]
    try:
        return BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return None


def settings_from_airflow(**overrides: Any) -> EtlSettings:
    """Env settings, with values from the gourmetgram_postgres / gourmetgram_minio connections."""
    values: dict[str, Any] = {}
    pg = _airflow_connection(names.AIRFLOW_CONN_POSTGRES)
    if pg is not None:
        user = quote(pg.login or "", safe="")
        password = quote(pg.password or "", safe="")
        auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
        port = f":{pg.port}" if pg.port else ""
        values["database_url"] = f"postgresql+psycopg://{auth}{pg.host}{port}/{pg.schema or names.DATABASE_NAME}"
        event(log, "connection", conn_id=names.AIRFLOW_CONN_POSTGRES, host=pg.host)
    s3 = _airflow_connection(names.AIRFLOW_CONN_MINIO)
    if s3 is not None:
        extra = s3.extra_dejson or {}
        endpoint = extra.get("endpoint_url") or (s3.host and f"http://{s3.host}:{s3.port or 9000}")
        if endpoint:
            values["s3_endpoint_url"] = endpoint
        if s3.login:
            values["aws_access_key_id"] = s3.login
        if s3.password:
            values["aws_secret_access_key"] = s3.password
        event(log, "connection", conn_id=names.AIRFLOW_CONN_MINIO, endpoint=endpoint)
    values.update(overrides)
    return EtlSettings(**values)


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw in (None, ""):
        return default
    try:
        return float(raw)
    except ValueError:
        event(log, "bad_env_value", level=logging.WARNING, name=name, value=raw)
        raise

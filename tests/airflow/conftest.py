"""Fixtures for the ETL integration tests (loopback servers of tests/infra/servers.sh).

The shared tests/conftest.py loads $GG_INFRA_DIR/env for tests marked integration; until then
(and when run alone) the env file is loaded here as well.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def _load_env() -> None:
    env = Path(os.environ.get("GG_INFRA_DIR", "/tmp/gg-infra")) / "env"
    if not env.exists():
        return
    for line in env.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and key and key not in os.environ:
            os.environ[key] = value


_load_env()


@pytest.fixture(scope="session")
def etl_settings():
    if not os.environ.get("DATABASE_URL"):
        pytest.skip("no loopback servers: start tests/infra/servers.sh")
    from gourmetgram.common import db
    from gourmetgram.etl.config import settings_from_env

    settings = settings_from_env()
    db.upgrade(settings.database_url.get_secret_value())
    return settings


@pytest.fixture(scope="session")
def s3(etl_settings):
    from gourmetgram.common.storage import s3_client
    from gourmetgram.etl import lake

    client = s3_client(etl_settings)
    lake.ensure_bucket(client, etl_settings.datalake_bucket)
    return client


@pytest.fixture(scope="session")
def iceberg(etl_settings, s3):
    from gourmetgram.etl.catalog import load_catalog

    return load_catalog(etl_settings)


@pytest.fixture(scope="session")
def topics(etl_settings):
    from gourmetgram.common.kafka import ensure_topics

    ensure_topics(etl_settings.kafka_bootstrap_servers)

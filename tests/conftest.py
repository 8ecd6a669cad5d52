"""Shared fixtures. Integration tests talk to the real loopback servers started by
``tests/infra/servers.sh start``; their addresses and generated credentials come from
``$GG_INFRA_DIR/env`` (default /tmp/gg-infra/env)."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
INFRA_SCRIPT = REPO / "tests" / "infra" / "servers.sh"


def _infra_env_file() -> Path:
    return Path(os.environ.get("GG_INFRA_DIR", "/tmp/gg-infra")) / "env"


def _read_env(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            k, v = line.split("=", 1)
            out[k.strip()] = v.strip()
    return out


@pytest.fixture(scope="session")
def infra_env() -> dict[str, str]:
    """Environment of the loopback servers, also exported into os.environ."""
    path = _infra_env_file()
    if not path.exists():
        pytest.fail(f"{path} missing: start the test servers with `{INFRA_SCRIPT} start`", pytrace=False)
    env = _read_env(path)
    os.environ.update(env)
    return env


@pytest.fixture(scope="session")
def database_url(infra_env: dict[str, str]) -> str:
    return infra_env["DATABASE_URL"]


@pytest.fixture(scope="session")
def migrated_db(database_url: str) -> str:
    from gourmetgram.common import db

    db.upgrade(database_url)
    return database_url


@pytest.fixture(scope="session")
def kafka_bootstrap(infra_env: dict[str, str]) -> str:
    from gourmetgram.common import kafka

    bootstrap = infra_env["KAFKA_BOOTSTRAP_SERVERS"]
    kafka.ensure_topics(bootstrap)
    return bootstrap


@pytest.fixture(scope="session")
def s3_settings(infra_env: dict[str, str]) -> Any:
    from gourmetgram.common import names
    from gourmetgram.common.settings import S3Settings
    from gourmetgram.common.storage import s3_client

    settings = S3Settings()
    client = s3_client(settings)
    existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
    for bucket in names.BUCKETS:
        if bucket not in existing:
            client.create_bucket(Bucket=bucket)
    return settings


@pytest.fixture(scope="session")
def s3(s3_settings: Any) -> Any:
    from gourmetgram.common.storage import s3_client

    return s3_client(s3_settings)


@pytest.fixture()
def redis_client(infra_env: dict[str, str]) -> Iterator[Any]:
    import redis

    client = redis.Redis(
        host=infra_env["REDIS_HOST"],
        port=int(infra_env["REDIS_PORT"]),
        password=infra_env["REDIS_PASSWORD"],
        decode_responses=True,
    )
    yield client
    client.close()


def infra(*args: str) -> None:
    """Run tests/infra/servers.sh (e.g. to stop and start the broker mid-test)."""
    subprocess.run([str(INFRA_SCRIPT), *args], check=True, env=os.environ.copy())


@pytest.fixture()
def unique() -> str:
    return uuid.uuid4().hex[:10]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Under tests/run.sh (GG_NO_SKIPS=1) a skipped test fails the run: in CI everything a test
    needs is installed and started, so a skip would hide a test that cannot fail."""
    if os.environ.get("GG_NO_SKIPS") != "1":
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if skipped and session.exitstatus == 0:
        reporter.write_line(f"GG_NO_SKIPS: {len(skipped)} test(s) skipped; failing the run", red=True)
        session.exitstatus = 1


# --- ETL / Airflow tests: settings as the DAG tasks build them, the Iceberg catalog, topics ----
@pytest.fixture(scope="session")
def etl_settings(migrated_db: str, s3_settings: Any) -> Any:
    from gourmetgram.etl.config import settings_from_env

    return settings_from_env()


@pytest.fixture(scope="session")
def iceberg(etl_settings: Any) -> Any:
    from gourmetgram.etl.catalog import load_catalog

    return load_catalog(etl_settings)


@pytest.fixture(scope="session")
def topics(kafka_bootstrap: str) -> None:
    """The platform's topics exist (kafka_bootstrap ensures them)."""


@pytest.fixture(scope="session")
def chameleon_twin() -> Iterator[Any]:
    """The Chameleon twin deployed as a student does it (tests/chameleon/session.py)."""
    from tests.chameleon import session

    yield from session.deploy()


@pytest.fixture(scope="session")
def sandbox_bring_up() -> Iterator[Any]:
    """The sandbox's bring-up running in the background beside the twin's lab (tests/deployed.py)."""
    from tests import deployed

    yield from deployed.in_background()


@pytest.fixture(scope="session")
def sandbox(request: pytest.FixtureRequest) -> Iterator[Any]:
    """One freshly deployed host for the session's deployment tests: the local sandbox
    (tests/deployed.py), or with GG_DEPLOY_TWIN=1 (tests/run.sh deploy) the Chameleon twin's host."""
    if os.environ.get("GG_DEPLOY_TWIN") == "1":
        yield request.getfixturevalue("chameleon_twin")
        return
    from tests import deployed

    yield from deployed.deploy()

"""Fixtures for the API integration tests: a real ``gourmetgram-api`` (2 uvicorn workers) on a
free loopback port against the loopback servers, and a topic reader that matches events by id."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from gourmetgram.api.devserver import ApiProcess
from gourmetgram.common.db import engine_for
from tests.integration.api.apihelpers import MAX_UPLOAD


@pytest.fixture(scope="module")
def api_proc(
    migrated_db: str, kafka_bootstrap: str, s3_settings: Any, infra_env: dict[str, str]
) -> Iterator[ApiProcess]:
    with ApiProcess(infra_env, workers=2, max_upload_bytes=str(MAX_UPLOAD)) as proc:
        yield proc


@pytest.fixture(scope="module")
def api(api_proc: ApiProcess) -> str:
    return api_proc.url


@pytest.fixture(scope="module")
def client(api: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api, timeout=30) as c:
        yield c


@pytest.fixture(scope="module")
def engine(migrated_db: str) -> Any:
    return engine_for(migrated_db)

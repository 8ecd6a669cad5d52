"""Database stopped: /health is 503 "unhealthy", writes fail with a clean 503 (no internal text),
and the API recovers by itself when the database returns."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.integration.api.apihelpers import infra, make_user, upload

pytestmark = pytest.mark.integration


def test_database_outage_and_recovery(client: httpx.Client) -> None:
    image_id = upload(client, make_user(client)).json()["id"]
    infra("stop", "postgres")
    try:
        health = client.get("/health")
        assert health.status_code == 503
        assert health.json()["status"] == "unhealthy" and health.json()["checks"]["database"] == "down"
        r = client.post(f"/images/{image_id}/view")
        assert r.status_code == 503
        assert r.json() == {"detail": "Database unavailable, try again later"}
    finally:
        infra("start", "postgres")
    deadline = time.monotonic() + 30
    while client.get("/health").status_code != 200:
        assert time.monotonic() < deadline, "API did not recover after the database returned"
        time.sleep(0.5)
    assert client.post(f"/images/{image_id}/view").json()["views"] == 1

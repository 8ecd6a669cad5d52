import asyncio
import random

import httpx
import pytest

from gourmetgram.generator.client import ApiClient, ApiError
from gourmetgram.generator.state import State


def _client(handler, retries: int = 3) -> ApiClient:  # type: ignore[no-untyped-def]
    return ApiClient("http://api", max_retries=retries, backoff=0.001, transport=httpx.MockTransport(handler))


def test_retries_5xx_and_connection_errors_then_succeeds() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        if len(calls) == 1:
            raise httpx.ConnectError("refused")
        if len(calls) == 2:
            return httpx.Response(503, json={"detail": "Database unavailable"})
        return httpx.Response(200, json={"id": "u1"})

    client = _client(handler)
    assert asyncio.run(client.request("POST", "/users/", json={"username": "abc"})) == {"id": "u1"}
    assert len(calls) == 3 and client.retries == 2


def test_client_errors_are_not_retried() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(404, json={"detail": "Image not found"})

    with pytest.raises(ApiError) as err:
        asyncio.run(_client(handler).request("POST", "/images/x/view"))
    assert err.value.status == 404 and "Image not found" in str(err.value) and len(calls) == 1


def test_gives_up_after_max_retries() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(502, text="bad gateway")

    with pytest.raises(ApiError) as err:
        asyncio.run(_client(handler, retries=2).request("GET", "/health"))
    assert err.value.status == 502


def test_state_is_bounded_and_picks_recent_and_old_images() -> None:
    state = State(limit=100)
    for i in range(150):
        state.add("images", f"img{i}")
    assert len(state.images) == 100 and state.images[0] == "img50"
    rng = random.Random(0)
    picks = {state.pick_image(rng) for _ in range(2000)}
    assert "img149" in picks and "img50" in picks
    assert State().pick_image(rng) is None

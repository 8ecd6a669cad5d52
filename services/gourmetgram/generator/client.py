"""HTTP client for the API with retries and exponential back-off (connection errors, 5xx, 429)."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import httpx

from gourmetgram.common import logs

log = logs.get_logger("generator.client")
RETRY_STATUS = frozenset({429, 500, 502, 503, 504})


class ApiError(Exception):
    def __init__(self, status: int | None, message: str) -> None:
        super().__init__(message)
        self.status = status


class ApiClient:
    def __init__(
        self,
        base_url: str,
        timeout: float = 30.0,
        max_retries: int = 5,
        backoff: float = 0.5,
        max_backoff: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
        max_connections: int = 32,
    ) -> None:
        self.http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            timeout=timeout,
            transport=transport,
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        )
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.retries = 0

    async def request(self, method: str, path: str, **kwargs: Any) -> Any:
        attempt = 0
        while True:
            try:
                response = await self.http.request(method, path, **kwargs)
                if response.status_code < 400:
                    return response.json()
                if response.status_code not in RETRY_STATUS:
                    raise ApiError(response.status_code, _detail(response))
                error: ApiError = ApiError(response.status_code, _detail(response))
            except httpx.TransportError as exc:
                error = ApiError(None, f"{type(exc).__name__}: {exc}")
            if attempt >= self.max_retries:
                raise error
            delay = min(self.max_backoff, self.backoff * 2**attempt) * random.uniform(0.5, 1.0)
            attempt += 1
            self.retries += 1
            await asyncio.sleep(delay)

    async def close(self) -> None:
        await self.http.aclose()


def _detail(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except ValueError:
        detail = response.text[:200]
    return f"HTTP {response.status_code}: {detail}"

"""What the routers depend on: the per-process :class:`Runtime` (settings, PostgreSQL pool,
S3 client, this worker's relay) and cached health probes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request

from gourmetgram.api.relay import OutboxRelay
from gourmetgram.api.store import Store
from gourmetgram.common.settings import ApiSettings


@dataclass
class _Cached:
    value: bool = False
    at: float = 0.0


@dataclass
class Runtime:
    settings: ApiSettings
    store: Store
    s3: Any
    relay: OutboxRelay | None = None
    probes: dict[str, _Cached] = field(default_factory=lambda: {"broker": _Cached(), "s3": _Cached()})
    probe_lock: threading.Lock = field(default_factory=threading.Lock)

    def public_url(self, key: str) -> str:
        base = (self.settings.s3_public_url or self.settings.s3_endpoint_url).rstrip("/")
        return f"{base}/{self.settings.s3_bucket_name}/{key}"

    def probe(self, name: str, check: Callable[[], bool]) -> bool:
        """``check()`` at most every ``health_cache_seconds`` (blocking: call from a thread)."""
        cached = self.probes[name]
        with self.probe_lock:
            if cached.at and time.monotonic() - cached.at < self.settings.health_cache_seconds:
                return cached.value
        value = check()
        with self.probe_lock:
            cached.value, cached.at = value, time.monotonic()
        return value


def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime  # type: ignore[no-any-return]


Rt = Annotated[Runtime, Depends(get_runtime)]

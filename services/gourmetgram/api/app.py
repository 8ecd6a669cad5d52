"""FastAPI application factory (``create_app``): routers by resource, one PostgreSQL pool per
worker process, the outbox relay thread. Paths and fields are the reference API's.

Worker model and database access (chosen for issue 13; figures in bench/api_throughput.py):

- ``async def`` handlers on uvloop + httptools, with a psycopg 3 ``AsyncConnectionPool`` of
  ``DB_POOL_SIZE`` autocommit connections per worker. A threadpool handler costs a thread
  hand-off per request and SQLAlchemy's ORM/Core layer several times the statement's own
  CPU; on 2 cores that, not PostgreSQL, capped the API at 7 % of pgbench -N.
- One statement, one round trip, per write: a data-modifying CTE changes the row and inserts
  its outbox event (``store.py``). A single statement is one transaction, so the row and its
  event still commit together; psycopg prepares it after a few uses. Ids and event times are
  made here, so the whole payload is known before the statement runs.
- Group commit is PostgreSQL's own: concurrent commits from the pool's connections share WAL
  flushes, each request still waits for its own commit (acknowledged ⇒ durable, the outbox
  contract), so no batching of requests in the API, which would weaken that or add latency.
- ``API_WORKERS`` uvicorn processes (default 2 = the cores of the lab VM): a process per core
  keeps Python's GIL off the critical path; more processes only add connections and context
  switches on 2 cores shared with PostgreSQL.
- Uploads stay off the event loop where they block: Pillow's header check and boto3 run in
  the threadpool.
- Per-request log lines are DEBUG for 2xx/3xx (INFO and up for errors): at thousands of
  requests per second a line per request costs journald more CPU than the request itself.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gourmetgram.api import errors
from gourmetgram.api.deps import Runtime
from gourmetgram.api.outbox import outbox_written
from gourmetgram.api.relay import OutboxRelay
from gourmetgram.api.routers import ALL as ROUTERS
from gourmetgram.api.routers.uploads import too_large
from gourmetgram.api.store import Store, make_pool
from gourmetgram.common import logs
from gourmetgram.common.db import engine_for
from gourmetgram.common.settings import ApiSettings
from gourmetgram.common.storage import s3_client

log = logs.get_logger("api")


class AccessLog:
    """Pure ASGI middleware: refuse an over-long declared body (413) and log each request."""

    def __init__(self, app: ASGIApp, max_body: int, max_upload: int) -> None:
        self.app, self.max_body, self.max_upload = app, max_body, max_upload

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.max_body:
                await _send_json(send, 413, b'{"detail":"%s"}' % too_large(self.max_upload).encode())
                return
        start = time.perf_counter()
        status = 0  # until the response starts

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        except Exception:
            # Last resort: Starlette would answer 500 and re-raise, and uvicorn then drops the
            # keep-alive connection. Answer in the usual shape and keep the connection.
            log.exception("unhandled error", extra={"path": scope["path"]})
            if not status:
                status = 500
                await _send_json(send, 500, b'{"detail":"Internal server error"}')
        finally:
            level = 10 if status < 400 or scope["path"] == "/health" else (20 if status < 500 else 40)
            if log.isEnabledFor(level):
                ms = round((time.perf_counter() - start) * 1000, 1)
                path, method = scope["path"], scope["method"]
                logs.event(log, "request", level=level, method=method, path=path, status=status, ms=ms)


async def _send_json(send: Send, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _ensure_bucket(s3: object, bucket: str) -> None:
    try:
        s3.head_bucket(Bucket=bucket)  # type: ignore[attr-defined]
    except Exception:
        try:
            s3.create_bucket(Bucket=bucket)  # type: ignore[attr-defined]
            logs.event(log, "bucket created", bucket=bucket)
        except Exception as exc:
            logs.event(log, "bucket check failed", level=30, bucket=bucket, error=type(exc).__name__)


def create_app(settings: ApiSettings | None = None, start_relay: bool | None = None) -> FastAPI:
    settings = settings or ApiSettings()
    logs.setup(settings.log_level, settings.log_format)
    run_relay = settings.outbox_relay_enabled if start_relay is None else start_relay

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        url = settings.database_url.get_secret_value()
        pool = make_pool(url, settings.db_pool_size, settings.db_connect_timeout)
        await pool.open(wait=False)
        s3 = s3_client(settings, connect_timeout=3, read_timeout=20)
        _ensure_bucket(s3, settings.s3_bucket_name)
        rt = Runtime(settings=settings, store=Store(pool), s3=s3)
        if run_relay:
            engine = engine_for(url, 2, settings.db_connect_timeout)
            rt.relay = OutboxRelay(settings, engine=engine, wake=outbox_written)
            rt.relay.start()
        app.state.runtime = rt
        logs.event(log, "api started", bucket=settings.s3_bucket_name, relay=rt.relay is not None)
        try:
            yield
        finally:
            if rt.relay is not None:
                rt.relay.stop()
            await pool.close()
            logs.event(log, "api stopped")

    app = FastAPI(
        title="GourmetGram API",
        version="2.0",
        lifespan=lifespan,
        description="Ingestion API of the GourmetGram lab: every write also queues its Kafka event (outbox).",
    )
    errors.install(app)
    for router in ROUTERS:
        app.include_router(router)
    app.add_middleware(AccessLog, max_body=settings.max_upload_bytes + 256 * 1024, max_upload=settings.max_upload_bytes)
    return app

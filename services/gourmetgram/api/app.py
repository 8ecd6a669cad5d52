"""FastAPI application (``create_app``). Endpoints keep the reference's paths and fields.

Handlers are plain ``def`` (run in the threadpool) around synchronous SQLAlchemy and boto3,
so nothing blocks the event loop. Each write commits its row and its outbox event in one
transaction; the relay thread (leader-elected across workers) publishes the outbox.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy import insert, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from gourmetgram.api import imaging, schemas
from gourmetgram.api.outbox import add_event, outbox_written
from gourmetgram.api.relay import OutboxRelay
from gourmetgram.common import kafka, logs
from gourmetgram.common.db import Comment, Flag, Image, User, engine_for
from gourmetgram.common.events import CommentEvent, FlagEvent, UploadEvent, ViewEvent
from gourmetgram.common.settings import ApiSettings
from gourmetgram.common.storage import s3_client

log = logs.get_logger("api")

users_t = User.__table__
images_t = Image.__table__
comments_t = Comment.__table__
flags_t = Flag.__table__


@dataclass
class _Cached:
    value: bool = False
    at: float = 0.0


@dataclass
class Runtime:
    settings: ApiSettings
    engine: Engine
    s3: Any
    relay: OutboxRelay | None = None
    probes: dict[str, _Cached] = field(default_factory=lambda: {"broker": _Cached(), "s3": _Cached()})
    probe_lock: threading.Lock = field(default_factory=threading.Lock)

    def public_url(self, key: str) -> str:
        base = (self.settings.s3_public_url or self.settings.s3_endpoint_url).rstrip("/")
        return f"{base}/{self.settings.s3_bucket_name}/{key}"


def _runtime(request: Request) -> Runtime:
    return request.app.state.runtime  # type: ignore[no-any-return]


Rt = Annotated[Runtime, Depends(_runtime)]


def _not_found_message(exc: IntegrityError) -> str | None:
    """Which foreign key failed, from the constraint name Postgres reports (e.g. comments_image_id_fkey)."""
    diag = getattr(getattr(exc, "orig", None), "diag", None)
    constraint = getattr(diag, "constraint_name", None) or ""
    sqlstate = getattr(getattr(exc, "orig", None), "sqlstate", None)
    if sqlstate != "23503":
        return None
    for column, message in (
        ("image_id", "Image not found"),
        ("comment_id", "Comment not found"),
        ("user_id", "User not found"),
    ):
        if column in constraint:
            return message
    return "Referenced entity not found"


def _ensure_bucket(rt: Runtime) -> None:
    bucket = rt.settings.s3_bucket_name
    try:
        rt.s3.head_bucket(Bucket=bucket)
    except Exception:
        try:
            rt.s3.create_bucket(Bucket=bucket)
            logs.event(log, "bucket created", bucket=bucket)
        except Exception as exc:
            logs.event(log, "bucket check failed", level=30, bucket=bucket, error=type(exc).__name__)


def create_app(settings: ApiSettings | None = None, start_relay: bool | None = None) -> FastAPI:
    settings = settings or ApiSettings()
    logs.setup(settings.log_level, settings.log_format)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = engine_for(
            settings.database_url.get_secret_value(), settings.db_pool_size, settings.db_connect_timeout
        )
        rt = Runtime(settings=settings, engine=engine, s3=s3_client(settings, connect_timeout=3, read_timeout=20))
        _ensure_bucket(rt)
        if settings.outbox_relay_enabled if start_relay is None else start_relay:
            rt.relay = OutboxRelay(settings, engine=engine, wake=outbox_written)
            rt.relay.start()
        app.state.runtime = rt
        logs.event(log, "api started", bucket=settings.s3_bucket_name, relay=rt.relay is not None)
        try:
            yield
        finally:
            if rt.relay is not None:
                rt.relay.stop()
            logs.event(log, "api stopped")

    app = FastAPI(title="GourmetGram API", version="2.0", lifespan=lifespan)
    max_body = settings.max_upload_bytes + 256 * 1024

    @app.middleware("http")
    async def access_log(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > max_body:
            return JSONResponse(status_code=413, content={"detail": _too_large(settings)})
        start = time.perf_counter()
        response = await call_next(request)
        logs.event(
            log,
            "request",
            level=20 if request.url.path != "/health" else 10,
            method=request.method,
            path=request.url.path,
            status=response.status_code,
            ms=round((time.perf_counter() - start) * 1000, 1),
        )
        return response

    @app.exception_handler(OperationalError)
    async def db_unavailable(_: Request, exc: OperationalError) -> JSONResponse:
        logs.event(log, "database unavailable", level=40, error=type(exc.orig).__name__)
        return JSONResponse(status_code=503, content={"detail": "Database unavailable, try again later"})

    @app.exception_handler(DBAPIError)
    async def db_error(_: Request, exc: DBAPIError) -> JSONResponse:
        logs.event(log, "database error", level=40, error=type(exc.orig).__name__)
        return JSONResponse(status_code=500, content={"detail": "Internal server error"})

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {
                "loc": list(e.get("loc", ())),
                "msg": str(e.get("msg", "")).removeprefix("Value error, "),
                "type": e.get("type"),
            }
            for e in exc.errors()
        ]
        return JSONResponse(status_code=422, content={"detail": errors})

    # --- users -----------------------------------------------------------------------------
    @app.post("/users/", response_model=schemas.UserResponse)
    def create_user(body: schemas.UserCreate, rt: Rt) -> Any:
        cols = (users_t.c.id, users_t.c.username, users_t.c.created_at)
        with rt.engine.begin() as conn:
            row = conn.execute(
                pg_insert(users_t)
                .values(username=body.username)
                .on_conflict_do_nothing(index_elements=[users_t.c.username])
                .returning(*cols)
            ).first()
            created = row is not None
            if row is None:
                row = conn.execute(select(*cols).where(users_t.c.username == body.username)).one()
        if created:
            logs.event(log, "user created", user_id=row.id)
        return row._asdict()

    # --- upload ------------------------------------------------------------------------------
    @app.post("/upload/", response_model=schemas.ImageResponse)
    def upload(
        rt: Rt,
        user_id: Annotated[uuid.UUID, Form()],
        file: Annotated[UploadFile, File()],
        caption: Annotated[str | None, Form()] = None,
        category: Annotated[str | None, Form()] = None,
    ) -> Any:
        try:
            caption = schemas.clean_optional_text(caption, "caption", schemas.MAX_CAPTION)
            category = schemas.clean_optional_text(category, "category", schemas.MAX_CATEGORY)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        data = file.file.read(settings.max_upload_bytes + 1)
        if len(data) > settings.max_upload_bytes:
            raise HTTPException(413, _too_large(settings))
        if not data:
            raise HTTPException(422, "File is empty")
        kind = imaging.detect_image_type(data[: imaging.MAGIC_BYTES_NEEDED])
        if kind is None:
            raise HTTPException(415, "Unsupported file type: upload a JPEG, PNG or WebP image")
        if not imaging.is_decodable(data, kind):
            raise HTTPException(422, f"File is not a valid {kind.name} image")
        with rt.engine.connect() as conn:
            exists = conn.execute(select(users_t.c.id).where(users_t.c.id == user_id)).first()
        if exists is None:
            raise HTTPException(404, "User not found")

        image_id = uuid.uuid4()
        key = f"images/{image_id}.{kind.extension}"
        s3_url = rt.public_url(key)
        try:
            rt.s3.put_object(Bucket=settings.s3_bucket_name, Key=key, Body=data, ContentType=kind.content_type)
        except Exception as exc:
            logs.event(log, "s3 upload failed", level=40, key=key, error=type(exc).__name__)
            raise HTTPException(503, "Image storage unavailable, try again later") from None
        try:
            with rt.engine.begin() as conn:
                row = conn.execute(
                    insert(images_t)
                    .values(
                        id=image_id,
                        user_id=user_id,
                        s3_url=s3_url,
                        s3_key=key,
                        content_type=kind.content_type,
                        size_bytes=len(data),
                        caption=caption,
                        category=category,
                    )
                    .returning(images_t.c.uploaded_at, images_t.c.views)
                ).one()
                add_event(
                    conn,
                    UploadEvent(
                        image_id=image_id,
                        user_id=user_id,
                        category=category,
                        caption=caption,
                        uploaded_at=row.uploaded_at,
                        s3_url=s3_url,
                    ),
                )
        except Exception as exc:
            _delete_object(rt, key)
            if isinstance(exc, IntegrityError) and (msg := _not_found_message(exc)):
                raise HTTPException(404, msg) from None
            raise
        outbox_written.set()
        logs.event(log, "image stored", image_id=image_id, key=key, content_type=kind.content_type, size=len(data))
        return {
            "id": image_id,
            "user_id": user_id,
            "s3_url": s3_url,
            "caption": caption,
            "category": category,
            "views": row.views,
            "uploaded_at": row.uploaded_at,
        }

    # --- comments ------------------------------------------------------------------------------
    @app.post("/comments/", response_model=schemas.CommentResponse)
    def create_comment(body: schemas.CommentCreate, rt: Rt) -> Any:
        row = _write_with_event(
            rt,
            insert(comments_t)
            .values(image_id=body.image_id, user_id=body.user_id, content=body.content)
            .returning(comments_t.c.id, comments_t.c.created_at),
            lambda row: CommentEvent(
                comment_id=row.id,
                image_id=body.image_id,
                user_id=body.user_id,
                content=body.content,
                created_at=row.created_at,
            ),
        )
        return {
            "id": row.id,
            "image_id": body.image_id,
            "user_id": body.user_id,
            "content": body.content,
            "created_at": row.created_at,
        }

    # --- flags ---------------------------------------------------------------------------------
    @app.post("/flags/", response_model=schemas.FlagResponse)
    def create_flag(body: schemas.FlagCreate, rt: Rt) -> Any:
        if body.image_id is None and body.comment_id is None:
            raise HTTPException(400, "Must flag either an image or a comment")
        row = _write_with_event(
            rt,
            insert(flags_t)
            .values(user_id=body.user_id, image_id=body.image_id, comment_id=body.comment_id, reason=body.reason)
            .returning(flags_t.c.id, flags_t.c.created_at),
            lambda row: FlagEvent(
                flag_id=row.id,
                user_id=body.user_id,
                image_id=body.image_id,
                comment_id=body.comment_id,
                reason=body.reason,
                created_at=row.created_at,
            ),
        )
        return {
            "id": row.id,
            "user_id": body.user_id,
            "image_id": body.image_id,
            "comment_id": body.comment_id,
            "reason": body.reason,
            "created_at": row.created_at,
        }

    # --- views ---------------------------------------------------------------------------------
    @app.post("/images/{image_id}/view", response_model=schemas.ViewResponse)
    def record_view(image_id: uuid.UUID, rt: Rt) -> Any:
        with rt.engine.begin() as conn:
            row = conn.execute(
                text("UPDATE images SET views = views + 1 WHERE id = :id RETURNING views, now() AS viewed_at"),
                {"id": image_id},
            ).first()
            if row is None:
                raise HTTPException(404, "Image not found")
            add_event(conn, ViewEvent(image_id=image_id, viewed_at=row.viewed_at))
        outbox_written.set()
        return {"status": "ok", "views": row.views}

    # --- health --------------------------------------------------------------------------------
    @app.get("/health", response_model=schemas.HealthResponse)
    def health(rt: Rt) -> Any:
        checks: dict[str, str] = {}
        outbox: dict[str, Any] = {}
        try:
            with rt.engine.connect() as conn:
                backlog, oldest = conn.execute(
                    text(
                        "SELECT count(*), EXTRACT(EPOCH FROM now() - min(created_at)) "
                        "FROM event_outbox WHERE sent_at IS NULL"
                    )
                ).one()
            checks["database"] = "ok"
            outbox = {
                "backlog": int(backlog),
                "oldest_unsent_age_seconds": round(float(oldest), 3) if oldest is not None else None,
            }
        except Exception as exc:
            checks["database"] = "down"
            logs.event(log, "health: database down", level=30, error=type(exc).__name__)
        broker_ok = _probe(rt, "broker", lambda: kafka.broker_reachable(settings.kafka_bootstrap_servers, 2.0))
        checks["broker"] = "ok" if broker_ok else "down"
        checks["s3"] = "ok" if _probe(rt, "s3", lambda: _s3_ok(rt)) else "down"
        stats = rt.relay.stats.snapshot() if rt.relay else {"relay_leader": False}
        if checks["database"] != "ok":
            status, code = "unhealthy", 503
        elif all(v == "ok" for v in checks.values()):
            status, code = "healthy", 200
        else:
            status, code = "degraded", 200
        body = {"status": status, "kafka_enabled": broker_ok, "checks": checks, "outbox": outbox, "kafka_stats": stats}
        return JSONResponse(status_code=code, content=body)

    return app


def _write_with_event(rt: Runtime, statement: Any, make_event: Callable[[Any], Any]) -> Any:
    """Insert a row and its outbox event in one transaction; a missing referenced row is a 404."""
    try:
        with rt.engine.begin() as conn:
            row = conn.execute(statement).one()
            add_event(conn, make_event(row))
    except IntegrityError as exc:
        if msg := _not_found_message(exc):
            raise HTTPException(404, msg) from None
        raise
    outbox_written.set()
    return row


def _too_large(settings: ApiSettings) -> str:
    return f"File too large: the limit is {settings.max_upload_bytes} bytes"


def _delete_object(rt: Runtime, key: str) -> None:
    try:
        rt.s3.delete_object(Bucket=rt.settings.s3_bucket_name, Key=key)
        logs.event(log, "orphan object removed after failed DB write", level=30, key=key)
    except Exception as exc:
        logs.event(log, "could not remove object after failed DB write", level=40, key=key, error=type(exc).__name__)


def _s3_ok(rt: Runtime) -> bool:
    try:
        rt.s3.head_bucket(Bucket=rt.settings.s3_bucket_name)
        return True
    except Exception:
        return False


def _probe(rt: Runtime, name: str, check: Callable[[], bool]) -> bool:
    cached = rt.probes[name]
    now = time.monotonic()
    with rt.probe_lock:
        if now - cached.at < rt.settings.health_cache_seconds and cached.at:
            return cached.value
    value = check()
    with rt.probe_lock:
        cached.value, cached.at = value, time.monotonic()
    return value

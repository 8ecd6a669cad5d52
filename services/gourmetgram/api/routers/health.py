"""GET /health: database (and outbox backlog), broker and S3, with cached probes."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from gourmetgram.api import schemas, store
from gourmetgram.api.deps import Rt, Runtime
from gourmetgram.common import kafka, logs

log = logs.get_logger("api")
router = APIRouter(tags=["health"])


def _s3_ok(rt: Runtime) -> bool:
    try:
        rt.s3.head_bucket(Bucket=rt.settings.s3_bucket_name)
        return True
    except Exception:
        return False


def _probes(rt: Runtime) -> tuple[bool, bool]:
    bootstrap = rt.settings.kafka_bootstrap_servers
    broker = rt.probe("broker", lambda: kafka.broker_reachable(bootstrap, 2.0))
    return broker, rt.probe("s3", lambda: _s3_ok(rt))


@router.get(
    "/health",
    operation_id="health",
    response_model=schemas.HealthResponse,
    responses={503: {"model": schemas.HealthResponse, "description": "Database down (status unhealthy)"}},
)
async def health(rt: Rt) -> Any:
    checks: dict[str, str] = {}
    outbox: dict[str, Any] = {}
    try:
        row = await rt.store.fetch_one(store.OUTBOX_HEALTH_SQL, {})
        checks["database"] = "ok"
        oldest = row.oldest
        outbox = {
            "backlog": int(row.backlog),
            "oldest_unsent_age_seconds": round(float(oldest), 3) if oldest is not None else None,
        }
    except Exception as exc:
        checks["database"] = "down"
        logs.event(log, "health: database down", level=30, error=type(exc).__name__)
    broker_ok, s3_ok = await run_in_threadpool(_probes, rt)
    checks["broker"] = "ok" if broker_ok else "down"
    checks["s3"] = "ok" if s3_ok else "down"
    stats = rt.relay.stats.snapshot() if rt.relay else {"relay_leader": False}
    if checks["database"] != "ok":
        status, code = "unhealthy", 503
    elif all(v == "ok" for v in checks.values()):
        status, code = "healthy", 200
    else:
        status, code = "degraded", 200
    body = {"status": status, "kafka_enabled": broker_ok, "checks": checks, "outbox": outbox, "kafka_stats": stats}
    return JSONResponse(status_code=code, content=body)

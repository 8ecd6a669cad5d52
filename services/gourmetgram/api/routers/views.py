"""POST /images/{image_id}/view: count a view and queue its event, in one statement."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter

from gourmetgram.api import schemas, store
from gourmetgram.api.deps import Rt
from gourmetgram.api.errors import responses
from gourmetgram.api.outbox import outbox_written
from gourmetgram.common.events import ViewEvent, utcnow

router = APIRouter(tags=["views"])


@router.post(
    "/images/{image_id}/view",
    operation_id="record_view",
    response_model=schemas.ViewResponse,
    responses=responses(404, 413, 422, 503),
)
async def record_view(image_id: uuid.UUID, rt: Rt) -> Any:
    event = ViewEvent(image_id=image_id, viewed_at=utcnow())
    row = await rt.store.write_with_event(store.VIEW_SQL, {"image_id": image_id}, event)
    if row is None:
        raise store.NotFound("Image")
    outbox_written.set()
    return {"status": "ok", "views": row.views}

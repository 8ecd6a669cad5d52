"""POST /flags/: flag an image or a comment and queue the event, in one statement."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, HTTPException

from gourmetgram.api import schemas, store
from gourmetgram.api.deps import Rt
from gourmetgram.api.errors import responses
from gourmetgram.api.outbox import outbox_written
from gourmetgram.common.events import FlagEvent, utcnow

router = APIRouter(tags=["flags"])


@router.post(
    "/flags/",
    operation_id="create_flag",
    response_model=schemas.FlagResponse,
    responses=responses(400, 404, 413, 422, 503),
)
async def create_flag(body: schemas.FlagCreate, rt: Rt) -> Any:
    if body.image_id is None and body.comment_id is None:
        raise HTTPException(400, "Must flag either an image or a comment")
    flag = {
        "id": uuid.uuid4(),
        "user_id": body.user_id,
        "image_id": body.image_id,
        "comment_id": body.comment_id,
        "reason": body.reason,
        "created_at": utcnow(),
    }
    event = FlagEvent(flag_id=flag["id"], **{k: v for k, v in flag.items() if k != "id"})
    await rt.store.write_with_event(store.FLAG_SQL, flag, event)
    outbox_written.set()
    return flag

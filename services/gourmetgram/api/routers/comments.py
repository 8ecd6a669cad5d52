"""POST /comments/: store a comment and queue its event, in one statement."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter

from gourmetgram.api import schemas, store
from gourmetgram.api.deps import Rt
from gourmetgram.api.errors import responses
from gourmetgram.api.outbox import outbox_written
from gourmetgram.common.events import CommentEvent, utcnow

router = APIRouter(tags=["comments"])


_LINKS = {
    "FlagComment": {
        "operationId": "create_flag",
        "requestBody": {"comment_id": "$response.body#/id", "user_id": "$response.body#/user_id"},
    },
}


@router.post(
    "/comments/",
    operation_id="create_comment",
    response_model=schemas.CommentResponse,
    responses={200: {"links": _LINKS}, **responses(400, 404, 413, 422, 503)},
)
async def create_comment(body: schemas.CommentCreate, rt: Rt) -> Any:
    comment = {
        "id": uuid.uuid4(),
        "image_id": body.image_id,
        "user_id": body.user_id,
        "content": body.content,
        "created_at": utcnow(),
    }
    event = CommentEvent(comment_id=comment["id"], **{k: v for k, v in comment.items() if k != "id"})
    await rt.store.write_with_event(store.COMMENT_SQL, comment, event)
    outbox_written.set()
    return comment

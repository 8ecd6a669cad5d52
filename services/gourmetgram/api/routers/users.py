"""POST /users/: create a user, or return the existing one of that name (race-free)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from gourmetgram.api import schemas, store
from gourmetgram.api.deps import Rt
from gourmetgram.api.errors import responses
from gourmetgram.common import logs

log = logs.get_logger("api")
router = APIRouter(tags=["users"])


_LINKS = {
    "UploadImage": {"operationId": "upload_image", "requestBody": {"user_id": "$response.body#/id"}},
    "FlagAsUser": {"operationId": "create_flag", "requestBody": {"user_id": "$response.body#/id"}},
}


@router.post(
    "/users/",
    operation_id="create_user",
    response_model=schemas.UserResponse,
    responses={200: {"links": _LINKS}, **responses(400, 413, 422, 503)},
)
async def create_user(body: schemas.UserCreate, rt: Rt) -> Any:
    params = {"username": body.username}
    async with rt.store.connection() as conn:
        row = await (await conn.execute(store.USER_INSERT_SQL, params)).fetchone()
        if row is None:  # exists (perhaps committed a moment ago by a concurrent request)
            row = await (await conn.execute(store.USER_SELECT_SQL, params)).fetchone()
        else:
            logs.event(log, "user created", user_id=row.id)
    return row._asdict()

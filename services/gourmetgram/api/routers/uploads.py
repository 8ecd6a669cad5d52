"""POST /upload/: check the file (size, magic bytes, bounded header parse), store it in S3,
then insert the image row and its upload event in one statement (the object is removed again
if that fails). Blocking work (Pillow, boto3) runs in the threadpool."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, HTTPException, UploadFile
from starlette.concurrency import run_in_threadpool

from gourmetgram.api import imaging, schemas, store
from gourmetgram.api.deps import Rt, Runtime
from gourmetgram.api.errors import FieldError, responses
from gourmetgram.api.outbox import outbox_written
from gourmetgram.common import logs
from gourmetgram.common.events import UploadEvent, utcnow

log = logs.get_logger("api")
router = APIRouter(tags=["images"])


def too_large(max_bytes: int) -> str:
    return f"File too large: the limit is {max_bytes} bytes"


def _form_text(value: str | None, field: str, limit: int) -> str | None:
    try:
        return schemas.clean_optional_text(value, field, limit)
    except ValueError as exc:
        raise FieldError(["body", field], str(exc)) from None


async def _checked_image(rt: Runtime, file: UploadFile) -> tuple[bytes, imaging.ImageType]:
    limit = rt.settings.max_upload_bytes
    data = await file.read(limit + 1)
    if len(data) > limit:
        raise HTTPException(413, too_large(limit))
    if not data:
        raise FieldError(["body", "file"], "File is empty")
    kind = imaging.detect_image_type(data[: imaging.MAGIC_BYTES_NEEDED])
    if kind is None:
        raise HTTPException(415, "Unsupported file type: upload a JPEG, PNG or WebP image")
    verdict = await run_in_threadpool(imaging.inspect, data, kind, rt.settings.max_image_pixels)
    if verdict is imaging.Verdict.TOO_MANY_PIXELS:
        raise HTTPException(413, f"Image too large: the limit is {rt.settings.max_image_pixels} pixels")
    if verdict is imaging.Verdict.INVALID:
        raise FieldError(["body", "file"], f"File is not a valid {kind.name} image")
    return data, kind


def _delete_object(rt: Runtime, key: str) -> None:
    try:
        rt.s3.delete_object(Bucket=rt.settings.s3_bucket_name, Key=key)
        logs.event(log, "orphan object removed after failed DB write", level=30, key=key)
    except Exception as exc:
        logs.event(log, "could not remove object after failed DB write", level=40, key=key, error=type(exc).__name__)


_LINKS = {
    "ViewImage": {"operationId": "record_view", "parameters": {"path.image_id": "$response.body#/id"}},
    "CommentOnImage": {
        "operationId": "create_comment",
        "requestBody": {"image_id": "$response.body#/id", "user_id": "$response.body#/user_id"},
    },
    "FlagImage": {
        "operationId": "create_flag",
        "requestBody": {"image_id": "$response.body#/id", "user_id": "$response.body#/user_id"},
    },
}


@router.post(
    "/upload/",
    operation_id="upload_image",
    response_model=schemas.ImageResponse,
    responses={200: {"links": _LINKS}, **responses(400, 404, 413, 415, 422, 503)},
)
async def upload(
    rt: Rt,
    user_id: Annotated[uuid.UUID, Form()],
    file: Annotated[UploadFile, File()],
    caption: Annotated[str | None, Form(description=f"at most {schemas.MAX_CAPTION} characters")] = None,
    category: Annotated[str | None, Form(description=f"at most {schemas.MAX_CATEGORY} characters")] = None,
) -> Any:
    caption = _form_text(caption, "caption", schemas.MAX_CAPTION)
    category = _form_text(category, "category", schemas.MAX_CATEGORY)
    data, kind = await _checked_image(rt, file)
    if await rt.store.fetch_one(store.USER_EXISTS_SQL, {"id": user_id}) is None:
        raise store.NotFound("User")

    image_id = uuid.uuid4()
    key = f"images/{image_id}.{kind.extension}"
    image = {
        "id": image_id,
        "user_id": user_id,
        "s3_url": rt.public_url(key),
        "s3_key": key,
        "content_type": kind.content_type,
        "size_bytes": len(data),
        "caption": caption,
        "category": category,
        "uploaded_at": utcnow(),
    }
    try:
        await run_in_threadpool(
            rt.s3.put_object, Bucket=rt.settings.s3_bucket_name, Key=key, Body=data, ContentType=kind.content_type
        )
    except Exception as exc:
        logs.event(log, "s3 upload failed", level=40, key=key, error=type(exc).__name__)
        raise HTTPException(503, "Image storage unavailable, try again later") from None
    event = UploadEvent(
        image_id=image_id,
        user_id=user_id,
        category=category,
        caption=caption,
        uploaded_at=image["uploaded_at"],
        s3_url=image["s3_url"],
    )
    try:
        row = await rt.store.write_with_event(store.IMAGE_SQL, image, event)
    except BaseException:
        await run_in_threadpool(_delete_object, rt, key)
        raise
    outbox_written.set()
    logs.event(log, "image stored", image_id=image_id, key=key, content_type=kind.content_type, size=len(data))
    return {k: image[k] for k in ("id", "user_id", "s3_url", "caption", "category", "uploaded_at")} | {
        "views": row.views
    }

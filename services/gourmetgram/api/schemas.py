"""Request and response bodies. Response field names are the reference API's."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

USERNAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{2,63}$")
USERNAME_RULE = "username must be 3-64 characters: letters, digits, '_', '.' or '-', starting with a letter or digit"
MAX_CAPTION = 2000
MAX_CATEGORY = 64
MAX_COMMENT = 2000
MAX_REASON = 500


def _not_blank(value: str, what: str, limit: int) -> str:
    value = value.strip()
    if not value:
        raise ValueError(f"{what} must not be empty")
    if len(value) > limit:
        raise ValueError(f"{what} must be at most {limit} characters")
    return value


class UserCreate(BaseModel):
    username: str

    @field_validator("username")
    @classmethod
    def _check(cls, value: str) -> str:
        if not USERNAME_RE.match(value):
            raise ValueError(USERNAME_RULE)
        return value


class UserResponse(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    username: str
    created_at: datetime


class ImageResponse(BaseModel):
    id: uuid.UUID
    user_id: uuid.UUID
    s3_url: str
    caption: str | None
    category: str | None
    views: int
    uploaded_at: datetime


class CommentCreate(BaseModel):
    image_id: uuid.UUID
    user_id: uuid.UUID
    content: str

    @field_validator("content")
    @classmethod
    def _check(cls, value: str) -> str:
        return _not_blank(value, "content", MAX_COMMENT)


class CommentResponse(BaseModel):
    id: uuid.UUID
    image_id: uuid.UUID
    user_id: uuid.UUID
    content: str
    created_at: datetime


class FlagCreate(BaseModel):
    user_id: uuid.UUID
    reason: str
    image_id: uuid.UUID | None = None
    comment_id: uuid.UUID | None = None

    @field_validator("reason")
    @classmethod
    def _check(cls, value: str) -> str:
        return _not_blank(value, "reason", MAX_REASON)


class FlagResponse(BaseModel):
    id: uuid.UUID
    user_id: uuid.UUID
    image_id: uuid.UUID | None
    comment_id: uuid.UUID | None
    reason: str
    created_at: datetime


class ViewResponse(BaseModel):
    status: str = "ok"
    views: int


class HealthResponse(BaseModel):
    status: str
    kafka_enabled: bool
    checks: dict[str, str]
    outbox: dict[str, Any]
    kafka_stats: dict[str, Any]


def clean_optional_text(value: str | None, what: str, limit: int) -> str | None:
    """Form fields: strip, empty -> None, length limit (ValueError with a clear message)."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if len(value) > limit:
        raise ValueError(f"{what} must be at most {limit} characters")
    return value

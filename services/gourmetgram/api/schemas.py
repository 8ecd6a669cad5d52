"""Request and response bodies. Response field names are the reference API's.

Every text a client sends goes through :func:`clean_text`: stripped, length-limited, and
refused when it holds a NUL byte (PostgreSQL text cannot store one) or an unpaired UTF-16
surrogate (JSON's ``"\\ud800"`` decodes to one; it cannot be encoded as UTF-8, so neither
PostgreSQL nor Kafka could carry it). Those become 422s here instead of errors further down.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

USERNAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{2,63}")
USERNAME_RULE = "username must be 3-64 characters: letters, digits, '_', '.' or '-', starting with a letter or digit"
MAX_CAPTION = 2000
MAX_CATEGORY = 64
MAX_COMMENT = 2000
MAX_REASON = 500
_SURROGATE = re.compile("[\ud800-\udfff]")


def check_encodable(value: str, what: str) -> str:
    """Refuse NUL bytes and unpaired surrogates (ValueError naming the field)."""
    if "\x00" in value:
        raise ValueError(f"{what} must not contain NUL bytes")
    if _SURROGATE.search(value):
        raise ValueError(f"{what} must be valid Unicode text (unpaired surrogate)")
    return value


def clean_text(value: str, what: str, limit: int) -> str:
    """Strip, refuse empty / too long / unencodable text."""
    value = check_encodable(value, what).strip()
    if not value:
        raise ValueError(f"{what} must not be empty")
    if len(value) > limit:
        raise ValueError(f"{what} must be at most {limit} characters")
    return value


def clean_optional_text(value: str | None, what: str, limit: int) -> str | None:
    """Form fields: like :func:`clean_text`, but empty or missing -> None."""
    if value is None or not value.strip():
        return None
    return clean_text(value, what, limit)


def _text(limit: int) -> dict[str, Any]:
    """What the schema can state of :func:`clean_text` (it also trims and refuses NUL bytes)."""
    return {"minLength": 1, "maxLength": limit, "pattern": r"\S"}


class UserCreate(BaseModel):
    username: str = Field(
        description="3-64 of A-Za-z0-9_.-, starting with a letter or digit; blanks around it are trimmed",
        json_schema_extra={"pattern": r"^\s*[A-Za-z0-9][A-Za-z0-9_.-]{2,63}\s*$"},
    )

    @field_validator("username")
    @classmethod
    def _check(cls, value: str) -> str:
        value = value.strip()
        if not USERNAME_RE.fullmatch(value):
            raise ValueError(USERNAME_RULE)
        return value


class UserResponse(BaseModel):
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
    content: str = Field(description=f"1-{MAX_COMMENT} characters after trimming", json_schema_extra=_text(MAX_COMMENT))

    @field_validator("content")
    @classmethod
    def _check(cls, value: str) -> str:
        return clean_text(value, "content", MAX_COMMENT)


class CommentResponse(BaseModel):
    id: uuid.UUID
    image_id: uuid.UUID
    user_id: uuid.UUID
    content: str
    created_at: datetime


class FlagCreate(BaseModel):
    user_id: uuid.UUID
    reason: str = Field(description=f"1-{MAX_REASON} characters after trimming", json_schema_extra=_text(MAX_REASON))
    image_id: uuid.UUID | None = None
    comment_id: uuid.UUID | None = None

    @field_validator("reason")
    @classmethod
    def _check(cls, value: str) -> str:
        return clean_text(value, "reason", MAX_REASON)


class FlagResponse(BaseModel):
    id: uuid.UUID
    user_id: uuid.UUID
    image_id: uuid.UUID | None
    comment_id: uuid.UUID | None
    reason: str
    created_at: datetime


class ViewResponse(BaseModel):
    status: Literal["ok"] = "ok"
    views: int


class OutboxHealth(BaseModel):
    backlog: int
    oldest_unsent_age_seconds: float | None


class HealthResponse(BaseModel):
    status: Literal["healthy", "degraded", "unhealthy"]
    kafka_enabled: bool
    checks: dict[str, Literal["ok", "down"]]
    outbox: OutboxHealth | dict[str, Any]
    kafka_stats: dict[str, Any]


# --- error bodies ---------------------------------------------------------------------------
class ErrorMessage(BaseModel):
    """Every error but a validation error: one human-readable sentence."""

    detail: str


class ValidationIssue(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ValidationErrorBody(BaseModel):
    """Every 422: one entry per refused field (``loc`` names it, e.g. ``["body", "content"]``)."""

    detail: list[ValidationIssue]

"""Event and message models carried on the Kafka topics.

Every event has an ``event_id`` (UUID) so that consumers can apply it idempotently, and an
event time in UTC (ISO-8601 with offset on the wire). Naive timestamps from older producers
are read as UTC; anything else malformed raises :class:`EventError`, which consumers route
to the dead-letter topic.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from gourmetgram.common import names


def _as_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


UtcDatetime = Annotated[datetime, AfterValidator(_as_utc)]


def utcnow() -> datetime:
    return datetime.now(UTC)


class EventError(ValueError):
    """A message that cannot be parsed into a known event."""


class _Event(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    event_id: uuid.UUID = Field(default_factory=uuid.uuid4)

    @property
    def image_key(self) -> str | None:
        image_id = getattr(self, "image_id", None)
        return str(image_id) if image_id is not None else None

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()


class UploadEvent(_Event):
    event_type: Literal["upload"] = "upload"
    image_id: uuid.UUID
    user_id: uuid.UUID
    category: str | None = None
    caption: str | None = None
    uploaded_at: UtcDatetime
    s3_url: str

    @property
    def occurred_at(self) -> datetime:
        return self.uploaded_at


class ViewEvent(_Event):
    event_type: Literal["view"] = "view"
    image_id: uuid.UUID
    viewed_at: UtcDatetime
    user_id: uuid.UUID | None = None
    source: str = "api"

    @property
    def occurred_at(self) -> datetime:
        return self.viewed_at


class CommentEvent(_Event):
    event_type: Literal["comment"] = "comment"
    comment_id: uuid.UUID
    image_id: uuid.UUID
    user_id: uuid.UUID
    content: str
    created_at: UtcDatetime

    @property
    def occurred_at(self) -> datetime:
        return self.created_at


class FlagEvent(_Event):
    event_type: Literal["flag"] = "flag"
    flag_id: uuid.UUID
    user_id: uuid.UUID
    image_id: uuid.UUID | None = None
    comment_id: uuid.UUID | None = None
    reason: str
    created_at: UtcDatetime

    @property
    def occurred_at(self) -> datetime:
        return self.created_at


PlatformEvent = UploadEvent | ViewEvent | CommentEvent | FlagEvent

_MODELS: dict[str, type[_Event]] = {
    "upload": UploadEvent,
    "view": ViewEvent,
    "comment": CommentEvent,
    "flag": FlagEvent,
}


class ModerationRequest(BaseModel):
    """Published by the stream consumer, consumed by the inference service.

    ``request_id`` is deterministic per (image, trigger, alert window) so that a replayed or
    re-published request maps to the same decision row.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    request_id: uuid.UUID
    image_id: uuid.UUID
    trigger: Literal["viral", "suspicious"]
    context: dict[str, Any] = Field(default_factory=dict)
    requested_at: UtcDatetime

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()


def parse_event(raw: bytes | str | dict[str, Any], topic: str | None = None) -> PlatformEvent:
    """Parse one message value. The topic, when given, must agree with the event type."""
    if topic is not None and isinstance(raw, bytes | str):
        return _parse_on_topic(raw, topic)
    try:
        data = raw if isinstance(raw, dict) else json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EventError(f"not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise EventError("event is not a JSON object")
    event_type = data.get("event_type")
    if event_type is None and topic is not None:
        event_type = names.EVENT_TYPE_BY_TOPIC.get(topic)
    model = _MODELS.get(str(event_type))
    if model is None:
        raise EventError(f"unknown event_type {event_type!r}")
    if topic is not None and names.TOPIC_BY_EVENT_TYPE[model.model_fields["event_type"].default] != topic:
        raise EventError(f"event_type {event_type!r} does not belong on topic {topic}")
    try:
        return model.model_validate(data)  # type: ignore[return-value]
    except ValidationError as exc:
        raise EventError(_summarise(exc)) from exc


def _parse_on_topic(raw: bytes | str, topic: str) -> PlatformEvent:
    """The stream consumer's hot path: the topic names the model, pydantic parses the JSON itself.

    Same verdicts as the generic path: a missing event_type takes the topic's, another one is refused.
    """
    event_type = names.EVENT_TYPE_BY_TOPIC.get(topic)
    if event_type is None:
        raise EventError(f"no event type belongs on topic {topic}")
    try:
        return _MODELS[event_type].model_validate_json(raw)  # type: ignore[return-value]
    except ValidationError as exc:
        raise EventError(_verdict(exc, topic)) from exc


def _verdict(exc: ValidationError, topic: str) -> str:
    """The generic path's wording for the fast path's refusals (operators grep for these)."""
    for err in exc.errors():
        loc, kind = err["loc"], err["type"]
        if kind == "json_invalid":
            return f"not JSON: {err['msg']}"
        if kind == "model_type" and not loc:
            return "event is not a JSON object"
        if loc == ("event_type",) and kind == "literal_error":
            given = err.get("input")
            if str(given) in _MODELS:
                return f"event_type {given!r} does not belong on topic {topic}"
            return f"unknown event_type {given!r}"
    return _summarise(exc)


def parse_moderation_request(raw: bytes | str) -> ModerationRequest:
    try:
        return ModerationRequest.model_validate_json(raw)
    except ValidationError as exc:
        raise EventError(_summarise(exc)) from exc


def _summarise(exc: ValidationError) -> str:
    parts = [f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in exc.errors()[:5]]
    return "; ".join(parts)


def moderation_request_id(image_id: uuid.UUID | str, trigger: str, window_start_epoch: int) -> uuid.UUID:
    """Deterministic id: the same alert (image, trigger, cooldown window) always gets the same id."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"gourmetgram:moderation:{image_id}:{trigger}:{window_start_epoch}")

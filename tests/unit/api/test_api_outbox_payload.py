import uuid
from datetime import UTC, datetime, timedelta, timezone

from gourmetgram.api.outbox import event_key, event_payload
from gourmetgram.common import names
from gourmetgram.common.events import CommentEvent, FlagEvent, UploadEvent, ViewEvent, parse_event

T = datetime(2026, 2, 19, 10, 0, 0, 123456, tzinfo=UTC)


def test_upload_payload_fields_and_offset() -> None:
    image_id, user_id = uuid.uuid4(), uuid.uuid4()
    ev = UploadEvent(image_id=image_id, user_id=user_id, category=None, caption="c", uploaded_at=T, s3_url="u")
    p = event_payload(ev)
    assert {"event_id", "event_type", "image_id", "user_id", "category", "caption", "uploaded_at", "s3_url"} <= set(p)
    assert p["event_type"] == "upload" and p["image_id"] == str(image_id) and p["category"] is None
    assert p["uploaded_at"] == "2026-02-19T10:00:00.123456+00:00"
    assert event_key(ev) == str(image_id)
    assert parse_event(p, names.TOPIC_UPLOADS) == ev


def test_view_time_is_converted_to_utc_with_offset() -> None:
    local = T.astimezone(timezone(timedelta(hours=-5)))
    p = event_payload(ViewEvent(image_id=uuid.uuid4(), viewed_at=local))
    assert p["viewed_at"] == "2026-02-19T10:00:00.123456+00:00"
    assert set(p) >= {"event_id", "event_type", "image_id", "viewed_at"}


def test_comment_and_flag_payloads() -> None:
    c = CommentEvent(comment_id=uuid.uuid4(), image_id=uuid.uuid4(), user_id=uuid.uuid4(), content="x", created_at=T)
    assert set(event_payload(c)) >= {
        "event_id",
        "event_type",
        "comment_id",
        "image_id",
        "user_id",
        "content",
        "created_at",
    }
    f = FlagEvent(flag_id=uuid.uuid4(), user_id=uuid.uuid4(), comment_id=uuid.uuid4(), reason="r", created_at=T)
    p = event_payload(f)
    assert p["image_id"] is None and p["comment_id"] == str(f.comment_id)
    assert event_key(f) is None

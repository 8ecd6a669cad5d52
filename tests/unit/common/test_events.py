import json
import uuid

import pytest

from gourmetgram.common import names
from gourmetgram.common.events import EventError, ViewEvent, moderation_request_id, parse_event


def test_view_round_trip_keeps_event_id_and_utc():
    img = uuid.uuid4()
    raw = json.dumps({"event_type": "view", "image_id": str(img), "viewed_at": "2026-11-29T10:00:00"})
    ev = parse_event(raw, names.TOPIC_VIEWS)
    assert isinstance(ev, ViewEvent)
    assert ev.viewed_at.utcoffset().total_seconds() == 0  # naive read as UTC
    again = parse_event(ev.to_bytes(), names.TOPIC_VIEWS)
    assert again == ev and again.event_id == ev.event_id


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"\xff\xfe", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"event_type": "like"}', "unknown event_type"),
        (b'{"event_type": "view", "image_id": "nope", "viewed_at": "2026-01-01T00:00:00Z"}', "image_id"),
        (b'{"event_type": "view", "image_id": "' + str(uuid.uuid4()).encode() + b'"}', "viewed_at"),
    ],
)
def test_malformed_messages_raise_event_error(raw, message):
    with pytest.raises(EventError, match=message):
        parse_event(raw, names.TOPIC_VIEWS)


def test_event_on_wrong_topic_is_refused():
    raw = json.dumps({"event_type": "view", "image_id": str(uuid.uuid4()), "viewed_at": "2026-01-01T00:00:00Z"})
    with pytest.raises(EventError, match="does not belong"):
        parse_event(raw, names.TOPIC_COMMENTS)


def test_moderation_request_id_is_deterministic():
    img = uuid.uuid4()
    assert moderation_request_id(img, "viral", 100) == moderation_request_id(str(img), "viral", 100)
    assert moderation_request_id(img, "viral", 100) != moderation_request_id(img, "suspicious", 100)

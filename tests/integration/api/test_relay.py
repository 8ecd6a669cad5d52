"""The outbox relay on its own: leader election, pruning, and batch throughput to the real broker."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest
from sqlalchemy import text

from gourmetgram.api.outbox import event_payload
from gourmetgram.api.relay import OutboxRelay
from gourmetgram.common import names
from gourmetgram.common.db import engine_for
from gourmetgram.common.events import ViewEvent, utcnow
from gourmetgram.common.settings import ApiSettings
from tests.integration.api.apihelpers import read_topics

pytestmark = pytest.mark.integration


@pytest.fixture()
def settings(migrated_db: str, kafka_bootstrap: str, s3_settings: Any) -> ApiSettings:
    return ApiSettings(outbox_retention_seconds=3600)


def test_only_one_relay_leads(settings: ApiSettings) -> None:
    a, b = OutboxRelay(settings), OutboxRelay(settings)
    lead_a = a._try_lead()
    assert lead_a is not None
    assert b._try_lead() is None
    OutboxRelay._release(lead_a)
    lead_b = b._try_lead()
    assert lead_b is not None
    OutboxRelay._release(lead_b)


def test_prune_removes_only_old_sent_rows(settings: ApiSettings) -> None:
    engine = engine_for(settings.database_url.get_secret_value())
    ids = [uuid.uuid4() for _ in range(3)]
    with engine.begin() as conn:
        for event_id, sent in zip(ids, ("now() - interval '2 hours'", "now()", "NULL"), strict=True):
            conn.execute(
                text(
                    "INSERT INTO event_outbox (event_id, topic, key, payload, sent_at) "
                    f"VALUES (:e, 'gourmetgram.views', NULL, '{{}}', {sent})"
                ),
                {"e": event_id},
            )
    OutboxRelay(settings).prune()
    with engine.connect() as conn:
        left = {
            r[0] for r in conn.execute(text("SELECT event_id FROM event_outbox WHERE event_id = ANY(:i)"), {"i": ids})
        }
        conn.execute(text("DELETE FROM event_outbox WHERE event_id = ANY(:i)"), {"i": ids})
        conn.commit()
    assert left == {ids[1], ids[2]}


def test_relay_drains_a_backlog_in_order_exactly_once(settings: ApiSettings, kafka_bootstrap: str) -> None:
    engine = engine_for(settings.database_url.get_secret_value())
    image_id = uuid.uuid4()
    n = 3000
    events = [ViewEvent(image_id=image_id, viewed_at=utcnow()) for _ in range(n)]
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO event_outbox (event_id, topic, key, payload) VALUES (:e, :t, :k, CAST(:p AS jsonb))"),
            [
                {"e": ev.event_id, "t": names.TOPIC_VIEWS, "k": str(image_id), "p": json.dumps(event_payload(ev))}
                for ev in events
            ],
        )
    relay = OutboxRelay(settings)
    lead = relay._try_lead()
    assert lead is not None, "another relay holds the lock"
    try:
        t0 = time.perf_counter()
        # Drain until the outbox is empty: rows other tests left unsent are relayed too, so
        # counting acknowledgements up to n could stop before all of this test's rows went out.
        while True:
            acked, failed = relay.relay_once()
            assert failed == 0
            if acked == 0:
                break
        seconds = time.perf_counter() - t0
    finally:
        OutboxRelay._release(lead)
    print(f"relay throughput: {n} events in {seconds:.2f}s = {n / seconds:.0f} events/s")
    want = {str(ev.event_id) for ev in events}
    found = read_topics(kafka_bootstrap, [names.TOPIC_VIEWS], want, timeout=60)
    assert set(found) == want and all(len(v) == 1 for v in found.values())
    # one key -> one partition -> the topic order is the outbox (id) order
    order = [str(ev.event_id) for ev in events]
    assert sorted(found, key=lambda e: found[e][0]["_offset"]) == order

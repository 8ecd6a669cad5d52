"""The operator CLI against the real servers."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest

from gourmetgram.common import names
from tests.integration.stream import helpers as h

pytestmark = pytest.mark.integration


def cli(*args: str) -> str:
    return subprocess.run(
        [sys.executable, "-m", "gourmetgram.cli", *args], check=True, capture_output=True, text=True, timeout=120
    ).stdout


def test_stats_counts_new_messages_and_rows(kafka_bootstrap, migrated_db):
    before = json.loads(cli("stats"))
    assert set(before["topics"]) == set(names.ALL_TOPICS)
    _, image_id = h.seed_image(migrated_db)
    h.produce(kafka_bootstrap, h.views(image_id, 5))
    after = json.loads(cli("stats"))
    assert after["topics"][names.TOPIC_VIEWS] == before["topics"][names.TOPIC_VIEWS] + 5
    assert after["tables"]["images"] == before["tables"]["images"] + 1


def test_simulate_viral_refuses_an_unknown_image(kafka_bootstrap, migrated_db):
    proc = subprocess.run(
        [sys.executable, "-m", "gourmetgram.cli", "simulate-viral", "00000000-0000-0000-0000-000000000000"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0 and "not found" in proc.stderr


def test_models_lists_published_artifacts(s3):
    from gourmetgram.tools import stats

    prefix = f"test-cli-models/{uuid.uuid4().hex[:8]}/"
    s3.put_object(Bucket=names.BUCKET_DATALAKE, Key=prefix + names.METADATA_FILE, Body=b'{"version": 3}')
    out = stats.models(s3, prefix=prefix)
    assert out["objects"] == {names.METADATA_FILE: 14}
    assert out["metadata"] == {"version": 3}
    default = json.loads(cli("models"))  # the CLI path, on the real prefix
    assert default["location"] == f"s3://{names.BUCKET_DATALAKE}/{names.MODEL_PREFIX}"


def test_simulate_viral_picks_no_image_in_its_alert_cooldown(migrated_db):
    from sqlalchemy import create_engine, text

    from gourmetgram.tools import simulate_viral

    _, fresh = h.seed_image(migrated_db)
    engine = create_engine(migrated_db)
    with engine.connect() as conn, conn.begin() as tx:
        # Every other image went viral a minute ago (rolled back afterwards).
        conn.execute(
            text(
                "INSERT INTO moderation_decisions (request_id, image_id, inference_mode, moderation_probability,"
                " recommendation, trigger_type, created_at) SELECT gen_random_uuid(), id, 'heuristic', 0.3, 'REVIEW',"
                " :t, now() - interval '1 minute'"
                " FROM images WHERE id <> :fresh"
            ),
            {"t": names.TRIGGER_VIRAL, "fresh": fresh},
        )
        assert {simulate_viral.fresh_image(conn) for _ in range(5)} == {fresh}
        conn.execute(
            text("UPDATE moderation_decisions SET created_at = now() - interval '2 hours' WHERE image_id <> :f"),
            {"f": fresh},
        )
        assert len({simulate_viral.fresh_image(conn) for _ in range(40)}) > 1  # past the cooldown: any image
        tx.rollback()

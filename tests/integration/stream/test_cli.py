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

"""A seeded platform history (Postgres rows via the SQLAlchemy models + events in Kafka) →
aggregation → etl_moderation → training_data rows with hand-checked features and labels;
running it twice leaves the same rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from gourmetgram.common import names
from gourmetgram.etl import aggregation, moderation

from .helpers import assert_hand_checked, produce, seed

pytestmark = pytest.mark.integration


def _mine(iceberg, ids):
    frame = iceberg.load_table(names.ICEBERG_TRAINING_DATA).scan().to_pandas()
    frame = frame[frame.image_id.isin(list(ids.values()))]
    return frame.sort_values(["image_id", "decision_point_minutes"]).reset_index(drop=True)


def test_etl_moderation_hand_checked(etl_settings, iceberg, s3, topics) -> None:
    now = aggregation.floor_bucket(datetime.now(UTC))
    base = now - timedelta(minutes=100)
    seeded = seed(etl_settings, base)
    ids, cutoff = seeded["ids"], seeded["cutoff"]
    produce(etl_settings.kafka_bootstrap_servers, seeded["events"])
    aggregation.run_interval(etl_settings, base - timedelta(hours=1), now + timedelta(minutes=5), catalog=iceberg)

    settings = etl_settings.model_copy(update={"label_horizon_hours": 40 / 60})
    ds = cutoff.date().isoformat()
    result = moderation.run(settings, ds, cutoff, timedelta(minutes=40), catalog=iceberg)
    assert result["extracted"]["tables"][names.TABLE_IMAGES]["uri"].endswith(f"raw/images/ds={ds}/images.parquet")
    rows = _mine(iceberg, ids)
    assert_hand_checked(rows, ids, base)

    # re-run: the table holds exactly the same rows (no duplicates), and so does the raw partition
    all_before = iceberg.load_table(names.ICEBERG_TRAINING_DATA).scan().to_pandas()
    moderation.run(settings, ds, cutoff, timedelta(minutes=40), catalog=iceberg)
    all_after = iceberg.load_table(names.ICEBERG_TRAINING_DATA).scan().to_pandas()
    key = ["image_id", "decision_point_minutes"]
    pd.testing.assert_frame_equal(
        all_before.sort_values(key).reset_index(drop=True), all_after.sort_values(key).reset_index(drop=True)
    )
    assert not all_after.duplicated(key).any()
    listed = s3.list_objects_v2(Bucket=settings.datalake_bucket, Prefix=f"raw/images/ds={ds}/")
    assert [o["Key"] for o in listed["Contents"]] == [f"raw/images/ds={ds}/images.parquet"]

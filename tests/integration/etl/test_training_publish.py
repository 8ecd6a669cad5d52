"""Training on moderation.training_data (produced by the ETL) → artifacts + metadata in MinIO,
metrics present, every artifact verifies against metadata.json and the loaded model predicts
through the shared model_artifacts.predict_proba (what the inference loader does)."""

from __future__ import annotations

import io
import json
import uuid
from datetime import UTC, datetime

import joblib
import numpy as np
import pytest

from gourmetgram.common import features, names
from gourmetgram.common.model_artifacts import ModelMetadata, predict_proba, verify_artifact
from gourmetgram.etl import catalog as cat
from gourmetgram.training import large_dataset, publish, trainer

pytestmark = pytest.mark.integration


def test_train_on_table_and_publish(etl_settings, iceberg, s3, tmp_path) -> None:
    # a small training_data-shaped table (the ETL test fills the real one; use our own identifier)
    identifier = f"{names.NS_MODERATION}.training_test_{uuid.uuid4().hex[:8]}"
    batch = large_dataset.generate_batch(0, 6000, np.random.default_rng(3))
    table = cat.ensure_table(iceberg, identifier, cat.TRAINING_SCHEMA)
    table.append(batch.to_pandas().pipe(cat.to_arrow, cat.TRAINING_SCHEMA))
    prefix = f"test-models/{uuid.uuid4().hex[:8]}/"
    try:
        result = trainer.train_streaming(trainer.batch_source(iceberg.load_table(identifier), 1000), epochs=2)
        plots = trainer.save_plots(result, tmp_path)
        assert {"roc", "pr", "confusion_matrix", "rss"} <= set(plots)
        assert result.metrics["roc_auc"] is not None and result.metrics["pr_auc"] is not None
        # held-out split by image: no image on both sides
        ids = iceberg.load_table(identifier).scan(selected_fields=("image_id",)).to_pandas()["image_id"]
        held = trainer.is_test(ids, 20)
        assert not set(ids[held]) & set(ids[~held])

        first = publish.publish(s3, result, etl_settings.datalake_bucket, prefix)
        second = publish.publish(s3, result, etl_settings.datalake_bucket, prefix)
        assert (first.version, second.version) == (1, 2)

        raw = s3.get_object(Bucket=etl_settings.datalake_bucket, Key=prefix + names.METADATA_FILE)["Body"].read()
        meta = ModelMetadata.model_validate(json.loads(raw))
        meta.check_compatible()
        assert meta.metrics["roc_auc"] == result.metrics["roc_auc"] and meta.rows == 6000
        assert {"scikit-learn", "numpy"} <= set(meta.library_versions)
        loaded = {}
        for name in names.MODEL_ARTIFACTS:
            data = s3.get_object(Bucket=etl_settings.datalake_bucket, Key=prefix + name)["Body"].read()
            verify_artifact(name, data, meta)
            loaded[name] = joblib.load(io.BytesIO(data))
        rows = batch.to_pandas().head(5).to_dict("records")
        numeric, categorical = features.model_inputs_from_rows(rows)
        p = predict_proba(
            loaded[names.MODEL_FILE], loaded[names.SCALER_FILE], loaded[names.ENCODER_FILE], numeric, categorical
        )
        assert p.shape == (5,) and ((p >= 0) & (p <= 1)).all()
        # a serving-side vector goes through the same artifacts
        vec = features.feature_vector(
            features.FeatureInputs(
                uploaded_at=datetime(2025, 3, 1, tzinfo=UTC),
                decision_time=datetime(2025, 3, 1, 0, 5, tzinfo=UTC),
                views_5min=30,
                views_1hr=30,
                comments_5min=2,
                comments_1hr=2,
                caption="x",
                category="Egg",
                user_image_count=3,
                user_created_at=datetime(2025, 1, 1, tzinfo=UTC),
            )
        )
        n, c = features.model_inputs_from_vector(vec)
        assert predict_proba(
            loaded[names.MODEL_FILE], loaded[names.SCALER_FILE], loaded[names.ENCODER_FILE], n, c
        ).shape == (1,)
    finally:
        iceberg.drop_table(identifier)
        from gourmetgram.etl import lake

        lake.delete_prefix(s3, etl_settings.datalake_bucket, prefix)


def test_trainer_rss_bounded_on_streamed_table(iceberg) -> None:
    """Issue 3's bound: streaming 1M rows keeps RSS growth after the first batch under 200 MiB and the
    peak under 1 GiB (bench/training_memory.py measures 1M and 10M rows under a 512 MiB cgroup)."""
    identifier = f"{names.NS_MODERATION}.large_test_rss"
    large_dataset.generate(
        iceberg, rows=1_000_000, batch_rows=250_000, commit_rows=1_000_000, identifier=identifier, show_progress=False
    )
    try:
        result = trainer.train_streaming(trainer.batch_source(iceberg.load_table(identifier)), epochs=1)
        trace = np.array(result.rss_trace) / 2**20
        assert result.rows_train + result.rows_test == 1_000_000
        assert trace.max() - trace[0] < 200, trace
        assert trace.max() < 1024, trace
        assert result.metrics["roc_auc"] > 0.55
    finally:
        iceberg.drop_table(identifier)

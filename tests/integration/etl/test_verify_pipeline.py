from __future__ import annotations

import io

import pytest

from gourmetgram.etl.verify import verify_pipeline

pytestmark = pytest.mark.integration


def test_verify_pipeline_missing_table_is_an_error(iceberg) -> None:
    out = io.StringIO()
    assert verify_pipeline(iceberg, "moderation.no_such_table", out=out) == 1
    assert "does not exist" in out.getvalue()


def test_verify_pipeline_prints_schema_count_and_sample(iceberg) -> None:
    import numpy as np

    from gourmetgram.etl import catalog as cat
    from gourmetgram.training.large_dataset import generate_batch

    identifier = "moderation.verify_test"
    table = cat.ensure_table(iceberg, identifier, cat.TRAINING_SCHEMA)
    table.overwrite(generate_batch(0, 12, np.random.default_rng(0)).to_pandas().pipe(cat.to_arrow, cat.TRAINING_SCHEMA))
    try:
        out = io.StringIO()
        assert verify_pipeline(iceberg, identifier, out=out) == 0
        text = out.getvalue()
        assert "Schema:" in text and "Row count: 12" in text and "Sample rows (first 5)" in text
    finally:
        iceberg.drop_table(identifier)

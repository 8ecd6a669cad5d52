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


def test_verify_pipeline_empty_table_says_what_to_do(iceberg) -> None:
    import pandas as pd

    from gourmetgram.common import names
    from gourmetgram.etl import catalog as cat
    from gourmetgram.training import trainer

    identifier = "moderation.verify_empty_test"
    table = cat.ensure_table(iceberg, identifier, cat.TRAINING_SCHEMA)
    summary = {"cutoff": "2026-01-01T00:10:00+00:00", "label_horizon_minutes": 5.0, "rows": 0, "waiting": 7}
    table.overwrite(
        cat.to_arrow(pd.DataFrame(columns=cat.TRAINING_COLUMNS), cat.TRAINING_SCHEMA),
        snapshot_properties={f"gourmetgram.{k}": str(v) for k, v in summary.items()},
    )
    try:
        out = io.StringIO()
        assert verify_pipeline(iceberg, identifier, out=out) == 0
        text = out.getvalue()
        assert "Row count: 0" in text and "label horizon 5 min" in text
        assert "Waiting for their label: 7 images" in text
        assert names.DAG_AGGREGATION in text and names.DAG_ETL in text
        # and training on it ends in the actionable error, not a bare ValueError
        from gourmetgram.common.errors import NoTrainingRows

        with pytest.raises(NoTrainingRows, match="no training rows"):
            trainer.train_streaming(trainer.batch_source(cat.open_table(iceberg, identifier)), epochs=1)
    finally:
        iceberg.drop_table(identifier)


def test_open_table_names_the_step_that_creates_it(iceberg) -> None:
    from gourmetgram.common.errors import MissingTable
    from gourmetgram.etl import catalog as cat

    with pytest.raises(MissingTable, match=r"moderation\.absent_table does not exist"):
        cat.open_table(iceberg, "moderation.absent_table")

"""Both notebooks run top to bottom (nbclient) on small tables: S1, S3 and S4 (S2 is skipped:
its kill under the 512 MB kernel cap is test_capped_kernel.py; 10M rows: bench/training_memory.py)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import numpy as np
import pytest

from gourmetgram.common import names
from gourmetgram.etl import catalog as cat
from gourmetgram.etl import lake
from gourmetgram.training import large_dataset

pytestmark = pytest.mark.integration
TRAINING = Path(__file__).resolve().parents[3] / "training"


def test_notebooks_execute(etl_settings, iceberg, s3, tmp_path, monkeypatch) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    suffix = uuid.uuid4().hex[:8]
    small, large = f"moderation.nb_small_{suffix}", f"moderation.nb_large_{suffix}"
    t = cat.ensure_table(iceberg, small, cat.TRAINING_SCHEMA)
    t.append(
        cat.to_arrow(large_dataset.generate_batch(0, 3000, np.random.default_rng(5)).to_pandas(), cat.TRAINING_SCHEMA)
    )
    large_dataset.generate(
        iceberg, rows=60_000, batch_rows=20_000, commit_rows=60_000, identifier=large, show_progress=False
    )
    prefix = f"test-models/nb-{suffix}/"
    env = {
        "GG_TRAINING_TABLE": small,
        "GG_LARGE_TABLE": large,
        "GG_MODEL_PREFIX": prefix,
        "GG_SKIP_OOM_DEMO": "1",
        "GG_MODELS_DIR": str(tmp_path / "models"),
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    try:
        for name in ("training_large_data_demo.ipynb", "training.ipynb"):
            nb = nbformat.read(TRAINING / name, as_version=4)
            nbformat.validate(nb)
            nbclient.NotebookClient(
                nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
            ).execute()
        meta = s3.get_object(Bucket=etl_settings.datalake_bucket, Key=prefix + names.METADATA_FILE)
        assert b'"version": 1' in meta["Body"].read()
        assert (tmp_path / "models" / "demo" / "rss.png").exists()
        assert (tmp_path / "models" / "roc.png").exists()
    finally:
        for identifier in (small, large):
            iceberg.drop_table(identifier)
        lake.delete_prefix(s3, etl_settings.datalake_bucket, prefix)
        os.environ.pop("GG_SKIP_OOM_DEMO", None)


def test_notebook_on_an_empty_table_says_what_to_do(etl_settings, iceberg, tmp_path, monkeypatch) -> None:
    """Scenario 1 before the ETL produced rows: an actionable message, not a sklearn traceback."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    empty = f"moderation.nb_empty_{uuid.uuid4().hex[:8]}"
    cat.ensure_table(iceberg, empty, cat.TRAINING_SCHEMA)
    monkeypatch.setenv("GG_TRAINING_TABLE", empty)
    monkeypatch.setenv("GG_MODELS_DIR", str(tmp_path / "models"))
    try:
        nb = nbformat.read(TRAINING / "training_large_data_demo.ipynb", as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"][:2]  # setup, scenario 1
        nb.cells = code
        nbclient.NotebookClient(
            nb, timeout=300, kernel_name="python3", allow_errors=True, resources={"metadata": {"path": str(tmp_path)}}
        ).execute()
        outputs = code[1].outputs
        text = "".join(o.get("text", "") for o in outputs)
        assert f"error: no training rows in {empty}" in text and names.DAG_ETL in text, outputs
        assert not [o for o in outputs if o.output_type == "error"], outputs  # no traceback shown
    finally:
        iceberg.drop_table(empty)

#!/usr/bin/env python3
"""Build the two lab notebooks from reviewable source (run after editing this file):

    python training/build_notebooks.py

Both notebooks only call gourmetgram.training / gourmetgram.etl; env overrides (GG_TRAINING_TABLE,
GG_LARGE_TABLE, GG_MODEL_PREFIX, GG_SKIP_OOM_DEMO, GG_MODELS_DIR) let the tests run them on small data.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

SETUP = """\
import os, json
from pathlib import Path
from IPython.display import Image, display
from gourmetgram.common import names, logs
from gourmetgram.etl.catalog import load_catalog, open_table
from gourmetgram.common.errors import LabError, NoTrainingRows
from gourmetgram.training import trainer

logs.setup("WARNING")
# A failure you can act on (a missing table, no rows yet) prints what to do instead of a traceback.
get_ipython().set_custom_exc((LabError,), lambda shell, etype, value, tb, tb_offset=None: print(f"error: {value}"))
# DATABASE_URL + S3_* (or PYICEBERG_CATALOG__GOURMETGRAM__*) from the environment
catalog = load_catalog()
TRAINING_TABLE = os.environ.get("GG_TRAINING_TABLE", names.ICEBERG_TRAINING_DATA)
LARGE_TABLE = os.environ.get("GG_LARGE_TABLE", names.ICEBERG_LARGE_TRAINING_DATA)
MODELS = Path(os.environ.get("GG_MODELS_DIR", "models"))
MODELS.mkdir(parents=True, exist_ok=True)
print("numeric:", trainer.features.MODEL_NUMERIC_FEATURES)
print("categorical:", trainer.features.MODEL_CATEGORICAL_FEATURES, "label:", names.LABEL_COLUMN)
print(f"RSS now: {trainer.rss_bytes() / 2**20:.0f} MiB")
print("memory cap:", os.environ.get("GG_KERNEL_MEMORY_CAP", "none (not started by the capped kernel spec)"))"""

S1 = """\
# Scenario 1: the real table is small, so loading it whole is fine.
df = trainer.load_full(open_table(catalog, TRAINING_TABLE))
if df.empty:
    raise NoTrainingRows(TRAINING_TABLE)
print(f"{len(df):,} rows, {df.memory_usage(deep=True).sum() / 2**20:.1f} MiB in pandas")
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
import numpy as np
numeric, categorical = trainer.features.model_inputs_from_frame(df)
held_out = trainer.is_test(df["image_id"], 20)  # by image: no image on both sides
scaler = StandardScaler().fit(numeric[~held_out])
encoder = trainer.make_encoder()
x = np.hstack([scaler.transform(numeric), encoder.transform(categorical)])
y = df[names.LABEL_COLUMN].to_numpy()
model = LogisticRegression(max_iter=1000, class_weight="balanced").fit(x[~held_out], y[~held_out])
print(json.dumps(trainer.evaluate(y[held_out], model.predict_proba(x[held_out])[:, 1]), indent=1))"""

S2 = """\
# Scenario 2: the same call on the 10M-row table. This kernel runs in a 512 MB memory cgroup (the
# lab's docker --memory=512m), so the kernel's OOM killer ends it: Jupyter says "The kernel appears
# to have died" -- that is the lesson. Restart the kernel, run the setup cell again, then scenario 3.
if os.environ.get("GG_SKIP_OOM_DEMO") == "1":
    print("skipped (GG_SKIP_OOM_DEMO=1)")
else:
    large = trainer.load_full(open_table(catalog, LARGE_TABLE))
    mib = large.memory_usage(deep=True).sum() / 2**20
    cap = os.environ.get("GG_KERNEL_MEMORY_CAP", "none")
    print(f"{len(large):,} rows, {mib:.0f} MiB -- it fit: no memory cap was enforced here ({cap})")"""

S3 = """\
# Scenario 3: stream the large table in Arrow batches; memory stays flat whatever the row count.
def progress(epoch, batch, rss):
    if batch % 50 == 0:
        print(f"epoch {epoch + 1} batch {batch}: RSS {rss / 2**20:.0f} MiB")

result = trainer.train_streaming(trainer.batch_source(open_table(catalog, LARGE_TABLE)), epochs=1, on_batch=progress)
print(f"SUCCESS: {result.rows_train:,} rows trained, {result.rows_test:,} held out")
print(json.dumps({k: v for k, v in result.metrics.items()}, indent=1))
plots = trainer.save_plots(result, MODELS / "demo")
import joblib
joblib.dump(result.model, MODELS / "moderation_model_demo.joblib")
joblib.dump(result.scaler, MODELS / "scaler_demo.joblib")
joblib.dump(result.encoder, MODELS / "encoder_demo.joblib")
display(Image(plots["rss"]))"""

S4_TRAIN = """\
# Scenario 4: the streaming trainer on the real table built by the ETL (moderation.training_data).
result = trainer.train_streaming(trainer.batch_source(open_table(catalog, TRAINING_TABLE)), epochs=5)
print(f"{result.rows_train:,} training rows, {result.rows_test:,} held-out rows (split by image)")
print(json.dumps(result.metrics, indent=1))
plots = trainer.save_plots(result, MODELS)
for name in ("roc", "pr", "confusion_matrix"):
    if name in plots:
        display(Image(plots[name]))"""

S4_PUBLISH = """\
# Upload model.joblib, scaler.joblib, encoder.joblib, then metadata.json LAST (the inference
# service reloads when metadata.json changes, and verifies each artifact's sha256 first).
from gourmetgram.common.storage import s3_client
from gourmetgram.etl.config import settings_from_env
from gourmetgram.training import publish
settings = settings_from_env()
prefix = os.environ.get("GG_MODEL_PREFIX", names.MODEL_PREFIX)
meta = publish.publish(s3_client(settings), result, settings.datalake_bucket, prefix)
print(f"published version {meta.version} to s3://{settings.datalake_bucket}/{prefix}")
print(meta.model_dump_json(indent=1, include={"version", "trained_at", "rows", "metrics", "sha256"}))"""


def demo() -> nbformat.NotebookNode:
    return new_notebook(
        cells=[
            new_markdown_cell(
                "# Training with data larger than memory\n\nFour scenarios (lab step 7c). Run with a 512 MB "
                "memory limit. Scenario 4 is in `training.ipynb`."
            ),
            new_code_cell(SETUP),
            new_markdown_cell("## Scenario 1 — normal load\nThe ETL's table fits in memory."),
            new_code_cell(S1),
            new_markdown_cell("## Scenario 2 — naive full load (expected to crash)"),
            new_code_cell(S2),
            new_markdown_cell(
                "If the kernel died: **Kernel → Restart**, run the setup cell again, then continue with scenario 3."
            ),
            new_markdown_cell(
                "## Scenario 3 — streaming\n`ArrowBatchReader` → scaler (whole-stream statistics) and encoder "
                "(fixed vocabulary) → `SGDClassifier.partial_fit`, held-out images for metrics."
            ),
            new_code_cell(S3),
        ],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
    )


def real() -> nbformat.NotebookNode:
    return new_notebook(
        cells=[
            new_markdown_cell(
                "# Train the moderation model on real data (scenario 4)\n\nTrains on `moderation.training_data` "
                "and publishes the artifacts the inference service loads."
            ),
            new_code_cell(SETUP),
            new_markdown_cell("## Train (streaming, held-out split by image, metrics and plots)"),
            new_code_cell(S4_TRAIN),
            new_markdown_cell("## Publish to MinIO"),
            new_code_cell(S4_PUBLISH),
        ],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
    )


def main() -> None:
    for name, nb in (("training_large_data_demo.ipynb", demo()), ("training.ipynb", real())):
        nbformat.validate(nb)
        nbformat.write(nb, HERE / name)
        print(f"wrote {HERE / name}")


if __name__ == "__main__":
    main()

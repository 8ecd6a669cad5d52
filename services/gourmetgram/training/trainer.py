"""Streaming trainer: Iceberg scan → Arrow record batches (file by file, row group by row group) →
StandardScaler / OneHotEncoder → ``SGDClassifier(loss='log_loss').partial_fit``
memory bounded by one batch, whatever the table size.

* split: by a stable hash of ``image_id`` (pandas' siphash with a fixed key), so all decision
  points of an image are on the same side; ``test_percent`` of images are held out.
* scaler: ``partial_fit`` over the whole training stream in a first pass (exact mean/variance),
  never the first batch only; the same pass counts the classes for balanced sample weights.
* encoder: fitted on the fixed vocabulary (features.CATEGORICAL_VOCABULARY), so it never depends
  on which categories a batch happened to contain.
* model: SGDClassifier(loss='log_loss', average=True) with balanced sample weights.
* epochs: ``partial_fit`` over the training stream, each batch shuffled with a seeded generator.
* metrics on the held-out images: ROC AUC, PR AUC (average precision), log loss, confusion
  matrix at 0.5 and at the FLAG threshold; PNG plots (ROC, PR, confusion matrix, RSS per batch).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from gourmetgram.common import features, names
from gourmetgram.common.errors import NoTrainingRows
from gourmetgram.common.logs import event, get_logger

log = get_logger("training.trainer")

READ_COLUMNS = ("image_id", *features.MODEL_NUMERIC_FEATURES, *features.MODEL_CATEGORICAL_FEATURES, names.LABEL_COLUMN)


def rss_bytes() -> int:
    import psutil

    return psutil.Process(os.getpid()).memory_info().rss


@dataclass
class TrainResult:
    model: Any
    scaler: Any
    encoder: Any
    metrics: dict[str, Any]
    rows_train: int
    rows_test: int
    rss_trace: list[int] = field(default_factory=list)
    plots: dict[str, str] = field(default_factory=dict)
    y_true: np.ndarray | None = None
    y_score: np.ndarray | None = None


def batch_source(table: Any, batch_rows: int = 32_768) -> Callable[[], Iterator[pd.DataFrame]]:
    """A re-iterable stream of DataFrames of at most ``batch_rows`` rows, one data file at a time.

    pyiceberg's own ``to_arrow_batch_reader`` (0.12) materialises every data file in full and
    submits all files to its thread pool at once, so its memory grows with the table: it is
    OOM-killed under 512 MiB at 10M rows. Here the scan plans the files and each Parquet file is
    read row group by row group (``ParquetFile.iter_batches``) in sequence; a file with delete
    files (never written by our jobs, which rewrite files on overwrite) goes through pyiceberg's
    reader, one file at a time.
    """
    import pyarrow.parquet as pq
    from pyiceberg.io.pyarrow import ArrowScan

    def stream() -> Iterator[pd.DataFrame]:
        scan = table.scan(selected_fields=READ_COLUMNS)
        for task in scan.plan_files():
            if task.delete_files:
                arrow_scan = ArrowScan(table.metadata, table.io, scan.projection(), scan.row_filter)
                batches: Iterator[pa.RecordBatch] = arrow_scan.to_record_batches([task])
            else:
                handle = table.io.new_input(task.file.file_path).open()
                batches = pq.ParquetFile(handle).iter_batches(batch_size=batch_rows, columns=list(READ_COLUMNS))
            for batch in batches:
                for off in range(0, batch.num_rows, batch_rows):
                    yield pa.Table.from_batches([batch.slice(off, batch_rows)]).to_pandas()

    return stream


def frame_source(frame: pd.DataFrame, batch_rows: int = 65_536) -> Callable[[], Iterator[pd.DataFrame]]:
    def stream() -> Iterator[pd.DataFrame]:
        for off in range(0, len(frame), batch_rows):
            yield frame.iloc[off : off + batch_rows]

    return stream


def is_test(image_ids: pd.Series, test_percent: int) -> np.ndarray:
    hashed = pd.util.hash_pandas_object(image_ids.astype(str), index=False).to_numpy()
    return (hashed % np.uint64(100)) < np.uint64(test_percent)


def make_encoder() -> Any:
    from sklearn.preprocessing import OneHotEncoder

    vocab = [list(v) for v in features.CATEGORICAL_VOCABULARY]
    encoder = OneHotEncoder(categories=vocab, handle_unknown="ignore", sparse_output=False)
    width = max(len(v) for v in vocab)
    sample = np.array([[v[i % len(v)] for v in vocab] for i in range(width)], dtype=object)
    return encoder.fit(sample)


def _xy(frame: pd.DataFrame, scaler: Any, encoder: Any) -> tuple[np.ndarray, np.ndarray]:
    numeric, categorical = features.model_inputs_from_frame(frame)
    x = np.hstack([scaler.transform(numeric), encoder.transform(categorical)])
    return x, frame[names.LABEL_COLUMN].to_numpy(dtype=np.int64)


def train_streaming(
    source: Callable[[], Iterator[pd.DataFrame]],
    epochs: int = 3,
    test_percent: int = 20,
    seed: int = 42,
    alpha: float = 1e-4,
    on_batch: Callable[[int, int, int], None] | None = None,
) -> TrainResult:
    from sklearn.linear_model import SGDClassifier
    from sklearn.preprocessing import StandardScaler

    rss: list[int] = []
    scaler = StandardScaler()
    class_counts = np.zeros(2, dtype=np.int64)
    rows_train = rows_test = 0
    # pass 1: scaler statistics and class counts over the whole training stream
    for frame in source():
        train = frame[~is_test(frame["image_id"], test_percent)]
        rows_test += len(frame) - len(train)
        if len(train):
            scaler.partial_fit(features.model_inputs_from_frame(train)[0])
            class_counts += np.bincount(train[names.LABEL_COLUMN].to_numpy(dtype=np.int64), minlength=2)[:2]
            rows_train += len(train)
        rss.append(rss_bytes())
    if rows_train == 0:
        raise NoTrainingRows()
    encoder = make_encoder()
    weights = {c: rows_train / (2.0 * max(class_counts[c], 1)) for c in (0, 1)}
    # averaged SGD: with balanced sample weights, plain SGD's last iterate oscillates (held-out AUC ~0.5
    # on the synthetic table) while the averaged coefficients match a full-batch LogisticRegression.
    model = SGDClassifier(loss="log_loss", alpha=alpha, average=True, random_state=seed)
    rng = np.random.default_rng(seed)
    batch_no = 0
    for epoch in range(epochs):
        for frame in source():
            train = frame[~is_test(frame["image_id"], test_percent)]
            if not len(train):
                continue
            x, y = _xy(train, scaler, encoder)
            order = rng.permutation(len(y))
            x, y = x[order], y[order]
            model.partial_fit(x, y, classes=np.array([0, 1]), sample_weight=np.where(y == 1, weights[1], weights[0]))
            batch_no += 1
            rss.append(rss_bytes())
            if on_batch is not None:
                on_batch(epoch, batch_no, rss[-1])
        event(log, "epoch_done", epoch=epoch + 1, batches=batch_no, rss_mb=rss[-1] // 2**20)
    # evaluation on held-out images
    scores, truth = [], []
    for frame in source():
        test = frame[is_test(frame["image_id"], test_percent)]
        if len(test):
            x, y = _xy(test, scaler, encoder)
            scores.append(model.predict_proba(x)[:, 1].astype(np.float32))
            truth.append(y.astype(np.int8))
        rss.append(rss_bytes())
    y_true = np.concatenate(truth) if truth else np.zeros(0, np.int8)
    y_score = np.concatenate(scores) if scores else np.zeros(0, np.float32)
    metrics = evaluate(y_true, y_score)
    metrics.update(
        rows_train=rows_train,
        rows_test=len(y_true),
        positives_train=int(class_counts[1]),
        epochs=epochs,
        test_percent=test_percent,
        split="hash(image_id) % 100 < test_percent",
        peak_rss_mb=round(max(rss) / 2**20, 1),
    )
    event(log, "trained", **{k: v for k, v in metrics.items() if not isinstance(v, dict | list)})
    return TrainResult(model, scaler, encoder, metrics, rows_train, len(y_true), rss, {}, y_true, y_score)


def evaluate(y_true: np.ndarray, y_score: np.ndarray) -> dict[str, Any]:
    from sklearn.metrics import average_precision_score, confusion_matrix, log_loss, roc_auc_score

    out: dict[str, Any] = {"test_positive_rate": float(y_true.mean()) if len(y_true) else None}
    both = len(np.unique(y_true)) == 2
    out["roc_auc"] = float(roc_auc_score(y_true, y_score)) if both else None
    out["pr_auc"] = float(average_precision_score(y_true, y_score)) if both else None
    out["log_loss"] = float(log_loss(y_true, np.clip(y_score, 1e-7, 1 - 1e-7), labels=[0, 1])) if len(y_true) else None
    if not both:
        out["note"] = "held-out set has a single class: AUCs undefined"
    for name, thr in (("0.5", 0.5), ("flag", names.FLAG_THRESHOLD)):
        cm = confusion_matrix(y_true, (y_score >= thr).astype(int), labels=[0, 1]) if len(y_true) else np.zeros((2, 2))
        out[f"confusion_matrix@{name}"] = cm.astype(int).tolist()  # [[tn, fp], [fn, tp]]
    return out


def save_plots(result: TrainResult, out_dir: str | Path) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import precision_recall_curve, roc_curve

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, str] = {}
    y, s = result.y_true, result.y_score
    if y is not None and len(np.unique(y)) == 2:
        fpr, tpr = _thin(*roc_curve(y, s)[:2])
        fig, ax = plt.subplots(figsize=(5, 5))
        ax.plot(fpr, tpr, label=f"AUC {result.metrics['roc_auc']:.3f}")
        ax.plot([0, 1], [0, 1], "--", color="grey")
        ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC (held-out images)")
        ax.legend()
        paths["roc"] = _save(fig, out / "roc.png")
        prec, rec = _thin(*precision_recall_curve(y, s)[:2])
        fig, ax = plt.subplots(figsize=(5, 5))
        ax.plot(rec, prec, label=f"AP {result.metrics['pr_auc']:.3f}")
        ax.axhline(float(y.mean()), ls="--", color="grey", label="positive rate")
        ax.set(xlabel="recall", ylabel="precision", title="Precision-recall (held-out images)")
        ax.legend()
        paths["pr"] = _save(fig, out / "pr.png")
    cm = np.array(result.metrics["confusion_matrix@0.5"])
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.imshow(cm, cmap="Blues")
    for (i, j), v in np.ndenumerate(cm):
        ax.text(j, i, str(v), ha="center", va="center")
    ax.set(xticks=[0, 1], yticks=[0, 1], xlabel="predicted", ylabel="actual", title="Confusion matrix @0.5")
    paths["confusion_matrix"] = _save(fig, out / "confusion_matrix.png")
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(np.array(result.rss_trace) / 2**20)
    ax.set(xlabel="batch (all passes)", ylabel="RSS (MiB)", title="Trainer memory over batches")
    paths["rss"] = _save(fig, out / "rss.png")
    (out / "metrics.json").write_text(json.dumps(result.metrics, indent=2))
    result.plots = paths
    return paths


def _thin(x: np.ndarray, y: np.ndarray, points: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """At most ``points`` points of a curve, ends kept: a 2M-point line drawn by matplotlib takes
    hundreds of MB (scenario 3's plots were OOM-killed under the 512 MB kernel cap at 10M rows)."""
    if len(x) <= points:
        return x, y
    idx = np.unique(np.linspace(0, len(x) - 1, points).astype(np.int64))
    return x[idx], y[idx]


def _save(fig: Any, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return str(path)


def load_full(table: Any) -> pd.DataFrame:
    """The naive way (scenario 1/2): the whole table in one DataFrame."""
    return table.scan().to_pandas()

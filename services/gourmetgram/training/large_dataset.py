"""``moderation.large_training_data``: a seeded synthetic table with the same schema and Food-11
categories as ``moderation.training_data`` (so artifacts trained on it load in inference).

Rows are generated in batches and streamed into Iceberg with one commit per ``commit_rows``
(default 2.5M rows → 4 commits for 10M), never holding the table in memory. The label follows a
logistic model of a few features plus noise, so a classifier has something to learn.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gourmetgram.common import names
from gourmetgram.common.logs import event, get_logger
from gourmetgram.etl import catalog as cat

log = get_logger("training.large_dataset")

DEFAULT_ROWS = 10_000_000
LARGE_TABLE_PROPERTIES = {
    **cat.TRAINING_TABLE_PROPERTIES,
    "write.target-file-size-bytes": str(64 * 1024 * 1024),
}
_EPOCH0 = int(datetime(2025, 1, 1, tzinfo=UTC).timestamp() * 1_000_000)
_DP = np.array(names.DECISION_POINTS_MINUTES, dtype=np.int64)


def generate_batch(first_row: int, n: int, rng: np.random.Generator) -> pa.RecordBatch:
    """Rows ``first_row .. first_row + n`` (three decision points per synthetic image)."""
    rows = np.arange(first_row, first_row + n, dtype=np.int64)
    image_no = rows // len(_DP)
    dp = _DP[rows % len(_DP)]
    upload_us = _EPOCH0 + (image_no * 7_919_000_003) % (365 * 86400 * 1_000_000)
    decision_us = upload_us + dp * 60_000_000
    upload_s = upload_us // 1_000_000
    hour = (upload_s // 3600) % 24
    dow = ((upload_s // 86400) + 3) % 7  # 1970-01-01 was a Thursday (Monday = 0)
    weekend = (dow >= 5).astype(np.int64)
    views_1hr = rng.poisson(rng.gamma(1.2, 25.0, n) * (1 + dp / 30))
    views_5min = rng.binomial(views_1hr, np.clip(5 / (dp + 5), 0.05, 1.0))
    comments_1hr = rng.poisson(0.08 * views_1hr + 0.2)
    comments_5min = rng.binomial(comments_1hr, np.clip(5 / (dp + 5), 0.05, 1.0))
    caption_length = np.where(rng.random(n) < 0.8, rng.integers(1, 300, n), 0)
    user_images = rng.geometric(0.05, n)
    user_age = rng.integers(0, 3650, n)
    category = rng.integers(0, len(names.FOOD11_CLASSES), n)
    ratio = comments_1hr / np.maximum(views_1hr, 1)
    logit = (
        -3.2
        + 2.5 * ratio
        + 0.012 * views_5min
        + 0.6 * (user_age < 30)
        - 0.4 * (caption_length > 0)
        + 0.3 * (category == 3)
        + rng.normal(0, 0.5, n)
    )
    label = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    image_id = pc.binary_join_element_wise("syn-", pa.array(image_no).cast(pa.string()), "")
    classes = pa.array(names.FOOD11_CLASSES)
    columns = {
        "image_id": image_id,
        "decision_point_minutes": pa.array(dp),
        "decision_time": pa.array(decision_us, type=pa.timestamp("us", tz="UTC")),
        "time_since_upload_seconds": pa.array(dp * 60),
        "hour_of_day": pa.array(hour),
        "day_of_week": pa.array(dow),
        "is_weekend": pa.array(weekend),
        "views_5min": pa.array(views_5min.astype(np.int64)),
        "views_1hr": pa.array(views_1hr.astype(np.int64)),
        "comments_5min": pa.array(comments_5min.astype(np.int64)),
        "comments_1hr": pa.array(comments_1hr.astype(np.int64)),
        "view_velocity_per_min": pa.array(views_5min / 5.0),
        "comment_to_view_ratio": pa.array(ratio),
        "recent_engagement_score": pa.array(views_5min + 5.0 * comments_5min),
        "caption_length": pa.array(caption_length.astype(np.int64)),
        "has_caption": pa.array((caption_length > 0).astype(np.int64)),
        "user_image_count": pa.array(user_images.astype(np.int64)),
        "user_age_days": pa.array(user_age.astype(np.int64)),
        "category": pc.take(classes, pa.array(category)),
        names.LABEL_COLUMN: pa.array(label),
    }
    return pa.RecordBatch.from_arrays(list(columns.values()), schema=cat.TRAINING_SCHEMA.as_arrow())


def _batches(first: int, rows: int, batch_rows: int, rng: np.random.Generator, progress) -> Iterator[pa.RecordBatch]:
    done = 0
    while done < rows:
        n = min(batch_rows, rows - done)
        yield generate_batch(first + done, n, rng)
        done += n
        if progress is not None:
            progress.update(n)


def generate(
    catalog,
    rows: int = DEFAULT_ROWS,
    seed: int = 42,
    batch_rows: int = 250_000,
    commit_rows: int = 2_500_000,
    identifier: str = names.ICEBERG_LARGE_TRAINING_DATA,
    show_progress: bool = True,
) -> int:
    """(Re)create the table with ``rows`` rows; returns the number of commits."""
    from pyiceberg.exceptions import NoSuchTableError
    from tqdm.auto import tqdm

    try:
        catalog.drop_table(identifier)
        event(log, "table_dropped", table=identifier)
    except NoSuchTableError:
        pass
    table = cat.ensure_table(catalog, identifier, cat.TRAINING_SCHEMA, LARGE_TABLE_PROPERTIES)
    rng = np.random.default_rng(seed)
    schema = cat.TRAINING_SCHEMA.as_arrow()
    commits = 0
    with tqdm(total=rows, unit="rows", unit_scale=True, disable=not show_progress) as progress:
        for first in range(0, rows, commit_rows):
            n = min(commit_rows, rows - first)
            reader = pa.RecordBatchReader.from_batches(schema, _batches(first, n, batch_rows, rng, progress))
            table.append(reader)
            commits += 1
    event(log, "large_table_written", table=identifier, rows=rows, commits=commits, seed=seed)
    return commits

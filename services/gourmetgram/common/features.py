"""The 26 moderation features: one definition for the ETL, training and inference.

Both the batch path (events read back from Iceberg / Postgres) and the serving path (Redis
sliding windows + Postgres) reduce what they know about an image at a decision time ``t`` to a
:class:`FeatureInputs`, and :func:`compute_features` turns that into the vector. Windows are
closed intervals ``[t - W, t]`` in both paths (Redis ``ZCOUNT`` semantics), and nothing later
than ``t`` may enter an input.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import numpy as np

from gourmetgram.common import names

CATEGORY_FEATURES: Final = (
    "category_Bread",
    "category_Dairy",
    "category_Dessert",
    "category_Egg",
    "category_Fried",
    "category_Meat",
    "category_Noodles",
    "category_Rice",
    "category_Seafood",
    "category_Soup",
    "category_Veggie",
)
assert len(CATEGORY_FEATURES) == len(names.FOOD11_CLASSES)

# The 15 features before the category one-hot, in vector order.
BASE_FEATURES: Final = (
    "time_since_upload_seconds",
    "hour_of_day",
    "day_of_week",
    "is_weekend",
    "views_5min",
    "views_1hr",
    "comments_5min",
    "comments_1hr",
    "view_velocity_per_min",
    "comment_to_view_ratio",
    "recent_engagement_score",
    "caption_length",
    "has_caption",
    "user_image_count",
    "user_age_days",
)
FEATURE_NAMES: Final = (*BASE_FEATURES, *CATEGORY_FEATURES)
N_FEATURES: Final = 26
assert len(FEATURE_NAMES) == N_FEATURES

# How the model sees a vector: 3 categoricals (one-hot) + the other 13 base features (scaled).
MODEL_CATEGORICAL_FEATURES: Final = ("is_weekend", "has_caption", "category")
MODEL_NUMERIC_FEATURES: Final = tuple(f for f in BASE_FEATURES if f not in MODEL_CATEGORICAL_FEATURES)
assert len(MODEL_NUMERIC_FEATURES) == 13
# Fixed vocabulary: the encoder never depends on which categories a batch happened to contain.
CATEGORICAL_VOCABULARY: Final = (("0", "1"), ("0", "1"), (*names.FOOD11_CLASSES, names.UNKNOWN_CATEGORY))

# Columns of moderation.training_data (ETL output) besides image_id/decision point/label.
TRAINING_FEATURE_COLUMNS: Final = (*BASE_FEATURES, "category")


def normalise_category(category: str | None) -> str:
    """Food-11 class name, or Unknown. Accepts the exact name or a class_NN directory name."""
    if category is None:
        return names.UNKNOWN_CATEGORY
    value = category.strip()
    if value in names.FOOD11_CLASSES:
        return value
    if value.startswith("class_") and value[6:].isdigit() and int(value[6:]) < len(names.FOOD11_CLASSES):
        return names.FOOD11_CLASSES[int(value[6:])]
    return names.UNKNOWN_CATEGORY


@dataclass(frozen=True, slots=True)
class FeatureInputs:
    """Everything known about one image at ``decision_time`` (all datetimes timezone-aware)."""

    uploaded_at: datetime
    decision_time: datetime
    views_5min: int
    views_1hr: int
    comments_5min: int
    comments_1hr: int
    caption: str | None
    category: str | None
    user_image_count: int
    user_created_at: datetime

    def __post_init__(self) -> None:
        for field in ("uploaded_at", "decision_time", "user_created_at"):
            if getattr(self, field).tzinfo is None:
                raise ValueError(f"{field} must be timezone-aware")


def compute_features(inp: FeatureInputs) -> dict[str, float]:
    """The 26 features, in FEATURE_NAMES order."""
    uploaded = inp.uploaded_at.astimezone(UTC)
    weekday = uploaded.weekday()
    caption = inp.caption or ""
    category = normalise_category(inp.category)
    views_5, views_1h = float(inp.views_5min), float(inp.views_1hr)
    comments_5, comments_1h = float(inp.comments_5min), float(inp.comments_1hr)
    out: dict[str, float] = {
        "time_since_upload_seconds": float(max(0, int((inp.decision_time - inp.uploaded_at).total_seconds()))),
        "hour_of_day": float(uploaded.hour),
        "day_of_week": float(weekday),
        "is_weekend": 1.0 if weekday >= 5 else 0.0,
        "views_5min": views_5,
        "views_1hr": views_1h,
        "comments_5min": comments_5,
        "comments_1hr": comments_1h,
        "view_velocity_per_min": views_5 / 5.0,
        "comment_to_view_ratio": comments_1h / max(views_1h, 1.0),
        "recent_engagement_score": views_5 + 5.0 * comments_5,
        "caption_length": float(len(caption)),
        "has_caption": 1.0 if caption.strip() else 0.0,
        "user_image_count": float(inp.user_image_count),
        "user_age_days": float(max(0, int((inp.decision_time - inp.user_created_at).total_seconds() // 86400))),
    }
    for feature, cls in zip(CATEGORY_FEATURES, names.FOOD11_CLASSES, strict=True):
        out[feature] = 1.0 if category == cls else 0.0
    return {name: _finite(out[name]) for name in FEATURE_NAMES}


def feature_vector(inp: FeatureInputs) -> np.ndarray:
    feats = compute_features(inp)
    return np.fromiter((feats[n] for n in FEATURE_NAMES), dtype=np.float64, count=N_FEATURES)


def _finite(value: float) -> float:
    if math.isnan(value):
        return 0.0
    if math.isinf(value):
        return 1e6 if value > 0 else -1e6
    return value


# --- windows over event times (the batch side of the same semantics as Redis ZCOUNT) -------------
def count_in_window(sorted_epochs: Sequence[float], t: float, window_seconds: float) -> int:
    """Number of events with ``t - window <= ts <= t`` in an ascending sequence of epochs."""
    lo = bisect.bisect_left(sorted_epochs, t - window_seconds)
    hi = bisect.bisect_right(sorted_epochs, t)
    return hi - lo


def window_counts(view_epochs: Sequence[float], comment_epochs: Sequence[float], t: float) -> dict[str, int]:
    return {
        "views_5min": count_in_window(view_epochs, t, names.WINDOW_5MIN),
        "views_1hr": count_in_window(view_epochs, t, names.WINDOW_1HR),
        "comments_5min": count_in_window(comment_epochs, t, names.WINDOW_5MIN),
        "comments_1hr": count_in_window(comment_epochs, t, names.WINDOW_1HR),
    }


# --- model input -----------------------------------------------------------------------------------
def training_row(features: Mapping[str, float], category: str | None) -> dict[str, Any]:
    """A training_data row (feature columns) from a 26-feature dict and the category string."""
    row: dict[str, Any] = {}
    for col in TRAINING_FEATURE_COLUMNS:
        if col == "category":
            row[col] = normalise_category(category)
        elif col in ("view_velocity_per_min", "comment_to_view_ratio", "recent_engagement_score"):
            row[col] = float(features[col])
        else:
            row[col] = int(features[col])
    return row


def category_from_vector(vector: Sequence[float]) -> str:
    one_hot = [vector[FEATURE_NAMES.index(f)] for f in CATEGORY_FEATURES]
    best = int(np.argmax(one_hot))
    return names.FOOD11_CLASSES[best] if one_hot[best] == 1.0 else names.UNKNOWN_CATEGORY


def model_inputs_from_rows(rows: Iterable[Mapping[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    """(numeric matrix, categorical string matrix) from training_data-shaped rows."""
    rows = list(rows)
    numeric = np.array([[float(r[c] or 0) for c in MODEL_NUMERIC_FEATURES] for r in rows], dtype=np.float64).reshape(
        len(rows), len(MODEL_NUMERIC_FEATURES)
    )
    categorical = np.array(
        [[_cat_token(r["is_weekend"]), _cat_token(r["has_caption"]), normalise_category(r["category"])] for r in rows],
        dtype=object,
    ).reshape(len(rows), len(MODEL_CATEGORICAL_FEATURES))
    return numeric, categorical


def model_inputs_from_frame(frame: Any) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised :func:`model_inputs_from_rows` for a pandas DataFrame of training_data rows
    (same values, same order; used by the streaming trainer on millions of rows)."""
    import pandas as pd

    numeric = (frame.loc[:, list(MODEL_NUMERIC_FEATURES)].apply(pd.to_numeric, errors="coerce").fillna(0.0)).to_numpy(
        dtype=np.float64
    )

    def token(col: Any) -> np.ndarray:
        if col.dtype == object or pd.api.types.is_string_dtype(col):
            text = col.astype("string").str.strip().str.lower()
            return np.where(text.isin(["1", "true", "1.0"]).fillna(False).to_numpy(), "1", "0")
        values = pd.to_numeric(col, errors="coerce").fillna(0.0).to_numpy(dtype=np.float64)
        return np.where(values != 0.0, "1", "0")

    cats = frame["category"].astype(object).where(frame["category"].notna(), None)
    lookup = {c: normalise_category(None if c is None else str(c)) for c in pd.unique(cats)}
    category = cats.map(lookup).to_numpy(dtype=object)
    categorical = np.empty((len(frame), len(MODEL_CATEGORICAL_FEATURES)), dtype=object)
    categorical[:, 0] = token(frame["is_weekend"])
    categorical[:, 1] = token(frame["has_caption"])
    categorical[:, 2] = category
    return numeric, categorical


def model_inputs_from_vector(vector: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    feats = dict(zip(FEATURE_NAMES, vector, strict=True))
    row = {**feats, "category": category_from_vector(vector)}
    return model_inputs_from_rows([row])


def _cat_token(value: Any) -> str:
    if isinstance(value, str):
        return "1" if value.strip().lower() in ("1", "true", "1.0") else "0"
    return "1" if value and float(value) != 0.0 else "0"

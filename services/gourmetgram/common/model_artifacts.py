"""The contract between training and inference for model artifacts in MinIO.

``s3://gourmetgram-datalake/models/moderation/`` holds model.joblib (a classifier with
``predict_proba``), scaler.joblib (fitted on the 13 numeric features), encoder.joblib
(one-hot over the fixed categorical vocabulary) and metadata.json, written last. The
metadata lists each artifact's sha256; a loader must verify every artifact against it
before unpickling anything.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from gourmetgram.common import features, names


class ModelMetadata(BaseModel):
    model_config = ConfigDict(extra="allow", protected_namespaces=())

    version: int = Field(ge=1)
    trained_at: datetime
    updated_at: datetime
    algorithm: str
    rows: int = Field(ge=0)
    feature_names: list[str] = Field(default_factory=lambda: list(features.FEATURE_NAMES))
    numeric_features: list[str] = Field(default_factory=lambda: list(features.MODEL_NUMERIC_FEATURES))
    categorical_features: list[str] = Field(default_factory=lambda: list(features.MODEL_CATEGORICAL_FEATURES))
    metrics: dict[str, Any] = Field(default_factory=dict)
    library_versions: dict[str, str] = Field(default_factory=dict)
    sha256: dict[str, str]

    def check_compatible(self) -> None:
        """Refuse artifacts built for another feature definition."""
        if self.numeric_features != list(features.MODEL_NUMERIC_FEATURES):
            raise ValueError("model numeric features differ from this platform's feature definition")
        if self.categorical_features != list(features.MODEL_CATEGORICAL_FEATURES):
            raise ValueError("model categorical features differ from this platform's feature definition")
        missing = [a for a in names.MODEL_ARTIFACTS if a not in self.sha256]
        if missing:
            raise ValueError(f"metadata lists no sha256 for {', '.join(missing)}")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def verify_artifact(name: str, data: bytes, metadata: ModelMetadata) -> None:
    expected = metadata.sha256.get(name)
    actual = sha256_hex(data)
    if expected is None or expected.lower() != actual:
        raise ValueError(f"sha256 mismatch for {name}: metadata {expected}, object {actual}")


def predict_proba(model: Any, scaler: Any, encoder: Any, numeric: np.ndarray, categorical: np.ndarray) -> np.ndarray:
    """Positive-class probability for model inputs (see features.model_inputs_from_rows)."""
    x = np.hstack([scaler.transform(numeric), _dense(encoder.transform(categorical))])
    return model.predict_proba(x)[:, 1]


def _dense(matrix: Any) -> np.ndarray:
    return matrix.toarray() if hasattr(matrix, "toarray") else np.asarray(matrix)


def recommendation_for(probability: float, flag_threshold: float = names.FLAG_THRESHOLD) -> str:
    if probability < names.REVIEW_THRESHOLD:
        return names.SAFE
    if probability < flag_threshold:
        return names.REVIEW
    return names.FLAG

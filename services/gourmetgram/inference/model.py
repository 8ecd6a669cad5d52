"""Model artifacts from MinIO: polled in the background, verified, swapped atomically.

A poll reads metadata.json; when its version/updated_at changes, the three artifacts are
downloaded, each checked against the sha256 in the metadata *before* it is unpickled, loaded,
and tried on a neutral input. Only then does the new model replace the old one, in one
reference assignment. Any failure leaves the serving model untouched.
"""

from __future__ import annotations

import io
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import joblib
import numpy as np
from botocore.exceptions import ClientError

from gourmetgram.common import features, logs, names
from gourmetgram.common.model_artifacts import ModelMetadata, predict_proba, verify_artifact

log = logs.get_logger("inference.model")


@dataclass(frozen=True, slots=True)
class LoadedModel:
    version: int
    metadata: ModelMetadata
    model: Any
    scaler: Any
    encoder: Any
    loaded_at: datetime

    def predict(self, vector: np.ndarray) -> float:
        numeric, categorical = features.model_inputs_from_vector(list(vector))
        return float(predict_proba(self.model, self.scaler, self.encoder, numeric, categorical)[0])


class ModelManager:
    def __init__(self, s3: Any, bucket: str, prefix: str, interval: float) -> None:
        self.s3 = s3
        self.bucket = bucket
        self.prefix = prefix
        self.interval = interval
        self.current: LoadedModel | None = None
        self._seen_token: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._missing_logged = False

    def _get(self, name: str) -> tuple[bytes, str]:
        obj = self.s3.get_object(Bucket=self.bucket, Key=self.prefix + name)
        return obj["Body"].read(), obj.get("ETag", "")

    def check_once(self) -> bool:
        """Load a new model if metadata.json changed. Returns True when a new model was swapped in."""
        try:
            raw, etag = self._get(names.METADATA_FILE)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NoSuchBucket"):
                if not self._missing_logged:
                    logs.event(log, "no model artifacts yet", location=f"s3://{self.bucket}/{self.prefix}")
                    self._missing_logged = True
                return False
            raise
        if etag and etag == self._seen_token:
            return False
        self._seen_token = etag
        try:
            meta = ModelMetadata.model_validate_json(raw)
            meta.check_compatible()
            if self.current is not None and meta.version == self.current.version:
                return False
            logs.event(log, "Downloading model", location=f"s3://{self.bucket}/{self.prefix}", version=meta.version)
            loaded = {}
            for name in names.MODEL_ARTIFACTS:
                data, _ = self._get(name)
                verify_artifact(name, data, meta)  # before unpickling anything
                loaded[name] = joblib.load(io.BytesIO(data))
            candidate = LoadedModel(
                version=meta.version,
                metadata=meta,
                model=loaded[names.MODEL_FILE],
                scaler=loaded[names.SCALER_FILE],
                encoder=loaded[names.ENCODER_FILE],
                loaded_at=datetime.now(UTC),
            )
            probe = candidate.predict(np.zeros(features.N_FEATURES))
            if not 0.0 <= probe <= 1.0:
                raise ValueError(f"model returned probability {probe} outside [0, 1]")
        except Exception as exc:
            logs.event(
                log,
                "model artifacts refused; keeping the current model",
                level=40,
                error=str(exc)[:300],
                serving_version=self.current.version if self.current else None,
            )
            return False
        self.current = candidate
        logs.event(
            log,
            f"Model loaded successfully (version: {meta.version}, trained on {meta.rows} rows)",
            version=meta.version,
            rows=meta.rows,
            metrics={k: v for k, v in meta.metrics.items() if isinstance(v, int | float)},
        )
        return True

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="model-poller", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.check_once()
            except Exception as exc:
                logs.event(log, "model poll failed", level=30, error=str(exc)[:300])
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - started)))

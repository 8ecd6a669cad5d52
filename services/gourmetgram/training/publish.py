"""Publish model.joblib, scaler.joblib, encoder.joblib, then metadata.json LAST, to
s3://gourmetgram-datalake/models/moderation/. The version is the previous metadata's + 1; the
metadata carries each artifact's sha256 (inference verifies them before unpickling)."""

from __future__ import annotations

import io
import json
import platform
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from gourmetgram.common import names
from gourmetgram.common.logs import event, get_logger
from gourmetgram.common.model_artifacts import ModelMetadata, sha256_hex

log = get_logger("training.publish")


def previous_version(s3: Any, bucket: str, prefix: str = names.MODEL_PREFIX) -> int:
    try:
        body = s3.get_object(Bucket=bucket, Key=prefix + names.METADATA_FILE)["Body"].read()
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return 0
        raise
    return int(json.loads(body)["version"])


def library_versions() -> dict[str, str]:
    import joblib
    import numpy
    import sklearn

    return {
        "python": platform.python_version(),
        "scikit-learn": sklearn.__version__,
        "numpy": numpy.__version__,
        "joblib": joblib.__version__,
    }


def _dump(obj: Any) -> bytes:
    import joblib

    buf = io.BytesIO()
    joblib.dump(obj, buf)
    return buf.getvalue()


def publish(
    s3: Any,
    result: Any,
    bucket: str = names.BUCKET_DATALAKE,
    prefix: str = names.MODEL_PREFIX,
    extra: dict[str, Any] | None = None,
) -> ModelMetadata:
    blobs = {
        names.MODEL_FILE: _dump(result.model),
        names.SCALER_FILE: _dump(result.scaler),
        names.ENCODER_FILE: _dump(result.encoder),
    }
    now = datetime.now(UTC)
    metadata = ModelMetadata(
        version=previous_version(s3, bucket, prefix) + 1,
        trained_at=now,
        updated_at=now,
        algorithm=type(result.model).__name__,
        rows=result.rows_train + result.rows_test,
        metrics=result.metrics,
        library_versions=library_versions(),
        sha256={name: sha256_hex(data) for name, data in blobs.items()},
        **(extra or {}),
    )
    for name, data in blobs.items():
        s3.put_object(Bucket=bucket, Key=prefix + name, Body=data, ContentType="application/octet-stream")
    s3.put_object(
        Bucket=bucket,
        Key=prefix + names.METADATA_FILE,
        Body=metadata.model_dump_json(indent=2).encode(),
        ContentType="application/json",
    )
    event(log, "model_published", version=metadata.version, rows=metadata.rows, prefix=f"s3://{bucket}/{prefix}")
    return metadata

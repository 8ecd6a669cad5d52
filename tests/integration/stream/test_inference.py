"""Consumer + inference as real processes: viral burst → one decision; model mode with verified artifacts."""

from __future__ import annotations

import io
import json
import time
import uuid
from datetime import UTC, datetime

import joblib
import numpy as np
import pytest
from sklearn.linear_model import SGDClassifier
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sqlalchemy import text

from gourmetgram.common import db, features, names
from gourmetgram.common.events import ModerationRequest
from gourmetgram.common.model_artifacts import sha256_hex
from gourmetgram.tools import simulate_viral
from tests.integration.stream import helpers as h

pytestmark = pytest.mark.integration


def decisions(database_url: str, image_id: uuid.UUID) -> list[dict]:
    with db.engine_for(database_url).connect() as conn:
        return [
            dict(r)
            for r in conn.execute(
                text("SELECT * FROM moderation_decisions WHERE image_id = :i ORDER BY created_at"), {"i": image_id}
            ).mappings()
        ]


def test_viral_burst_through_consumer_and_inference_gives_exactly_one_review(
    start_consumer, start_inference, kafka_bootstrap, migrated_db
):
    _, image_id = h.seed_image(migrated_db, category="Dessert")
    consumer = start_consumer()
    inference = start_inference(INFERENCE_MODE="heuristic")
    simulate_viral.main(migrated_db, kafka_bootstrap, str(image_id), views=110, spread_seconds=240)
    rows = h.wait_for(lambda: decisions(migrated_db, image_id), 90, "a moderation decision")
    h.wait_for(lambda: "VIRAL CONTENT ALERT!" in consumer.log_text(), 10, "viral alert in consumer log")
    # The same burst again (new events) must not raise a second alert inside the cooldown.
    simulate_viral.main(migrated_db, kafka_bootstrap, str(image_id), views=20, spread_seconds=30)
    h.wait_for(lambda: "Stored moderation decision" in inference.log_text(), 10, "decision log line")
    time.sleep(5)
    rows = decisions(migrated_db, image_id)
    assert len(rows) == 1
    row = rows[0]
    assert (row["inference_mode"], row["recommendation"], row["trigger_type"]) == ("heuristic", "REVIEW", "viral")
    assert row["moderation_probability"] == pytest.approx(0.3)
    assert row["latency_ms"] > 0 and row["features"]["views_5min"] >= 100
    assert consumer.log_text().count("VIRAL CONTENT ALERT!") == 1


def test_redelivered_request_yields_one_decision(start_inference, kafka_bootstrap, migrated_db):
    _, image_id = h.seed_image(migrated_db)
    request = ModerationRequest(
        request_id=uuid.uuid4(), image_id=image_id, trigger="viral", requested_at=datetime.now(UTC)
    )
    raw = [(names.TOPIC_MODERATION_REQUESTS, request.to_bytes())] * 3
    h.produce(kafka_bootstrap, [], raw=raw)
    svc = start_inference(INFERENCE_MODE="heuristic")
    handled = f"request_id={request.request_id}"

    def deliveries() -> int:
        return sum(1 for line in svc.log_text().splitlines() if "[HEURISTIC]" in line and handled in line)

    h.wait_for(lambda: deliveries() >= 3, 60, "three deliveries handled")
    rows = decisions(migrated_db, image_id)
    assert len(rows) == 1 and rows[0]["recommendation"] == "SAFE"


def _train_artifacts(version: int) -> dict[str, bytes]:
    rng = np.random.default_rng(7)
    n = 400
    rows = []
    for i in range(n):
        views = int(rng.integers(0, 300))
        rows.append(
            {
                **{c: float(rng.integers(0, 50)) for c in features.MODEL_NUMERIC_FEATURES},
                "views_5min": float(views),
                "is_weekend": int(rng.integers(0, 2)),
                "has_caption": int(rng.integers(0, 2)),
                "category": names.FOOD11_CLASSES[i % 11],
            }
        )
    numeric, categorical = features.model_inputs_from_rows(rows)
    y = (numeric[:, features.MODEL_NUMERIC_FEATURES.index("views_5min")] > 150).astype(int)
    scaler = StandardScaler().fit(numeric)
    encoder = OneHotEncoder(categories=[list(v) for v in features.CATEGORICAL_VOCABULARY], handle_unknown="ignore")
    encoder.fit(categorical)
    x = np.hstack([scaler.transform(numeric), encoder.transform(categorical).toarray()])
    model = SGDClassifier(loss="log_loss", random_state=42).fit(x, y)
    out = {}
    for name, obj in ((names.MODEL_FILE, model), (names.SCALER_FILE, scaler), (names.ENCODER_FILE, encoder)):
        buf = io.BytesIO()
        joblib.dump(obj, buf)
        out[name] = buf.getvalue()
    now = datetime.now(UTC).isoformat()
    meta = {
        "version": version,
        "trained_at": now,
        "updated_at": now,
        "algorithm": "SGDClassifier",
        "rows": n,
        "metrics": {"roc_auc": 0.9},
        "sha256": {k: sha256_hex(v) for k, v in out.items()},
    }
    out[names.METADATA_FILE] = json.dumps(meta).encode()
    return out


def _upload(s3, prefix: str, artifacts: dict[str, bytes]) -> None:
    for name in names.MODEL_ARTIFACTS:  # metadata last: it is the change signal
        s3.put_object(Bucket=names.BUCKET_DATALAKE, Key=prefix + name, Body=artifacts[name])
    s3.put_object(Bucket=names.BUCKET_DATALAKE, Key=prefix + names.METADATA_FILE, Body=artifacts[names.METADATA_FILE])


def _request(kafka_bootstrap: str, image_id: uuid.UUID) -> uuid.UUID:
    req = ModerationRequest(request_id=uuid.uuid4(), image_id=image_id, trigger="viral", requested_at=datetime.now(UTC))
    h.produce(kafka_bootstrap, [], raw=[(names.TOPIC_MODERATION_REQUESTS, req.to_bytes())])
    return req.request_id


def _decision(database_url: str, request_id: uuid.UUID) -> dict | None:
    with db.engine_for(database_url).connect() as conn:
        row = (
            conn.execute(text("SELECT * FROM moderation_decisions WHERE request_id = :r"), {"r": request_id})
            .mappings()
            .first()
        )
    return dict(row) if row else None


def test_model_mode_serves_verified_model_and_refuses_tampered_artifacts(
    start_inference, kafka_bootstrap, migrated_db, s3
):
    prefix = f"test-models/{uuid.uuid4().hex[:8]}/"
    _, image_id = h.seed_image(migrated_db, category="Rice")
    svc = start_inference(INFERENCE_MODE="model", MODEL_PREFIX=prefix, MODEL_CHECK_INTERVAL="1")

    # No artifacts yet: the heuristic answers, marked as a fallback.
    first = _request(kafka_bootstrap, image_id)
    row = h.wait_for(lambda: _decision(migrated_db, first), 60, "fallback decision")
    assert row["inference_mode"] == "heuristic_fallback" and row["model_version"] is None

    v1 = _train_artifacts(1)
    _upload(s3, prefix, v1)
    h.wait_for(lambda: "Model loaded successfully (version: 1" in svc.log_text(), 30, "model v1 loaded")
    second = _request(kafka_bootstrap, image_id)
    row = h.wait_for(lambda: _decision(migrated_db, second), 30, "model decision")
    assert (row["inference_mode"], row["model_version"]) == ("model", 1)
    assert 0.0 <= row["moderation_probability"] <= 1.0

    # Version 2 whose model.joblib does not match its metadata: refused, v1 keeps serving.
    v2 = _train_artifacts(2)
    v2[names.MODEL_FILE] = v1[names.MODEL_FILE] + b"tampered"
    _upload(s3, prefix, v2)
    h.wait_for(lambda: "model artifacts refused" in svc.log_text(), 30, "tampered artifact refused")
    assert "sha256 mismatch for model.joblib" in svc.log_text()
    third = _request(kafka_bootstrap, image_id)
    row = h.wait_for(lambda: _decision(migrated_db, third), 30, "decision after refusal")
    assert (row["inference_mode"], row["model_version"]) == ("model", 1)
    assert svc.alive

"""Moderation decisions: features from Redis + Postgres, heuristic or model, one row per request.

A request about an image PostgreSQL does not know raises UnknownImageError and writes no decision
(the service dead-letters it). This is the one place the pipeline checks an image's existence:
requests are rare (one per alert and cooldown), views are not (see stream_consumer.processor).
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import redis
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from gourmetgram.common import features, logs, names
from gourmetgram.common.events import ModerationRequest
from gourmetgram.common.model_artifacts import recommendation_for
from gourmetgram.common.redis_state import RealtimeSignals, read_signals
from gourmetgram.inference import heuristic
from gourmetgram.inference.model import ModelManager

log = logs.get_logger("inference")

_IMAGE_QUERY = text(
    """
    SELECT i.uploaded_at, i.caption, i.category, u.created_at AS user_created_at,
           (SELECT count(*) FROM images i2 WHERE i2.user_id = i.user_id AND i2.uploaded_at <= :t)
               AS user_image_count,
           (SELECT count(*) FROM flags f WHERE f.image_id = i.id) AS flag_count
    FROM images i JOIN users u ON u.id = i.user_id
    WHERE i.id = :image_id
    """
)

_INSERT = text(
    """
    INSERT INTO moderation_decisions (request_id, image_id, inference_mode, moderation_probability,
        recommendation, trigger_type, model_version, latency_ms, reasoning, features)
    VALUES (:request_id, :image_id, :inference_mode, :moderation_probability, :recommendation,
        :trigger_type, :model_version, :latency_ms, CAST(:reasoning AS jsonb), CAST(:features AS jsonb))
    ON CONFLICT (request_id) DO NOTHING
    """
)


@dataclass(frozen=True, slots=True)
class Decision:
    request_id: uuid.UUID
    image_id: uuid.UUID
    inference_mode: str
    moderation_probability: float
    recommendation: str
    trigger_type: str
    model_version: int | None
    latency_ms: float
    reasoning: list[str]
    features: dict[str, float]
    stored: bool = False


@dataclass(frozen=True, slots=True)
class FetchedFeatures:
    inputs: features.FeatureInputs
    signals: RealtimeSignals
    flag_count: int


class UnknownImageError(LookupError):
    """The request names an image that is not in PostgreSQL: no decision is written."""


class Moderator:
    def __init__(
        self,
        redis_client: redis.Redis,
        engine: Engine,
        mode: str,
        models: ModelManager | None,
        flag_threshold: float = names.FLAG_THRESHOLD,
    ) -> None:
        self.redis = redis_client
        self.engine = engine
        self.mode = mode
        self.models = models
        self.flag_threshold = flag_threshold

    def fetch(self, image_id: uuid.UUID, at: datetime, conn: Connection | None = None) -> FetchedFeatures:
        """Two round trips: one Redis pipeline, one Postgres query."""
        signals = read_signals(self.redis, str(image_id), at.timestamp())
        if conn is None:
            with self.engine.connect() as own:
                row = own.execute(_IMAGE_QUERY, {"image_id": image_id, "t": at}).mappings().first()
        else:
            row = conn.execute(_IMAGE_QUERY, {"image_id": image_id, "t": at}).mappings().first()
        if row is None:
            raise UnknownImageError(f"image {image_id} is not in PostgreSQL")
        inputs = features.FeatureInputs(
            uploaded_at=row["uploaded_at"],
            decision_time=at,
            views_5min=signals.views_5min,
            views_1hr=signals.views_1hr,
            comments_5min=signals.comments_5min,
            comments_1hr=signals.comments_1hr,
            caption=row["caption"],
            category=row["category"],
            user_image_count=int(row["user_image_count"]),
            user_created_at=row["user_created_at"],
        )
        return FetchedFeatures(inputs, signals, int(row["flag_count"]))

    def handle(self, request: ModerationRequest) -> Decision:
        """Decide and store on one database connection (one pool checkout, one transaction)."""
        with self.engine.begin() as conn:
            return self.store(self.decide(request, conn=conn), conn=conn)

    def decide(
        self, request: ModerationRequest, at: datetime | None = None, conn: Connection | None = None
    ) -> Decision:
        started = time.perf_counter()
        at = at or datetime.now(UTC)
        fetched = self.fetch(request.image_id, at, conn)
        feats = features.compute_features(fetched.inputs)
        s = fetched.signals
        model = self.models.current if (self.mode == names.MODE_MODEL and self.models) else None
        model_version: int | None = None
        if model is not None:
            vector = [feats[n] for n in features.FEATURE_NAMES]
            probability = model.predict(vector)  # type: ignore[arg-type]
            mode, model_version = names.MODE_MODEL, model.version
            reasoning = [f"model v{model.version}"]
            recommendation = recommendation_for(probability, self.flag_threshold)
        else:
            result = heuristic.score(
                heuristic.HeuristicSignals(
                    total_flags=max(s.total_flags, fetched.flag_count),
                    comments_1min=s.comments_1min,
                    views_5min=s.views_5min,
                    comments_5min=s.comments_5min,
                    views_1hr=s.views_1hr,
                    comments_1hr=s.comments_1hr,
                    total_views=s.total_views,
                    total_comments=s.total_comments,
                ),
                self.flag_threshold,
            )
            probability, recommendation, reasoning = result.probability, result.recommendation, result.reasoning
            mode = names.MODE_HEURISTIC if self.mode == names.MODE_HEURISTIC else names.MODE_HEURISTIC_FALLBACK
        latency_ms = (time.perf_counter() - started) * 1000
        return Decision(
            request_id=request.request_id,
            image_id=request.image_id,
            inference_mode=mode,
            moderation_probability=float(probability),
            recommendation=recommendation,
            trigger_type=request.trigger,
            model_version=model_version,
            latency_ms=round(latency_ms, 3),
            reasoning=reasoning,
            features={**feats, "comments_1min": s.comments_1min, "total_flags": s.total_flags},
        )

    def store(self, decision: Decision, conn: Connection | None = None) -> Decision:
        params: dict[str, Any] = asdict(decision)
        params.pop("stored")
        params["reasoning"] = json.dumps(decision.reasoning)
        params["features"] = json.dumps(decision.features)
        if conn is None:
            with self.engine.begin() as own:
                inserted = own.execute(_INSERT, params).rowcount == 1
        else:
            inserted = conn.execute(_INSERT, params).rowcount == 1
        tag = {"heuristic": "HEURISTIC", "heuristic_fallback": "HEURISTIC_FALLBACK", "model": "MODEL"}[
            decision.inference_mode
        ]
        short = str(decision.image_id)[:8]
        logs.event(
            log,
            f"[{tag}] Image {short}... → probability={decision.moderation_probability:.2f}, "
            f"recommendation={decision.recommendation}"
            + (f" (mode=model, version={decision.model_version})" if decision.model_version else ""),
            image_id=str(decision.image_id),
            request_id=str(decision.request_id),
            mode=decision.inference_mode,
            trigger=decision.trigger_type,
            latency_ms=decision.latency_ms,
        )
        if inserted:
            logs.event(log, f"Stored moderation decision for {short}...", request_id=str(decision.request_id))
        else:
            logs.event(
                log, "duplicate moderation request; decision already stored", request_id=str(decision.request_id)
            )
        return Decision(**{**asdict(decision), "stored": inserted})

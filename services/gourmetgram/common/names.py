"""The platform's shared facts: one place for every name and number users see.

Services, DAGs, training, tests and the Ansible group_vars (checked by a unit test) all read
these values; change them here and nowhere else.
"""

from __future__ import annotations

from typing import Final

# --- Kafka topics -------------------------------------------------------------------------
TOPIC_UPLOADS: Final = "gourmetgram.uploads"
TOPIC_VIEWS: Final = "gourmetgram.views"
TOPIC_COMMENTS: Final = "gourmetgram.comments"
TOPIC_FLAGS: Final = "gourmetgram.flags"
TOPIC_MODERATION_REQUESTS: Final = "gourmetgram.moderation_requests"
TOPIC_DEAD_LETTER: Final = "gourmetgram.dead_letter"

EVENT_TOPICS: Final = (TOPIC_UPLOADS, TOPIC_VIEWS, TOPIC_COMMENTS, TOPIC_FLAGS)
ALL_TOPICS: Final = (*EVENT_TOPICS, TOPIC_MODERATION_REQUESTS, TOPIC_DEAD_LETTER)
# Topics the batch aggregation reads (uploads carry no count worth windowing).
AGGREGATED_TOPICS: Final = (TOPIC_VIEWS, TOPIC_COMMENTS, TOPIC_FLAGS)
TOPIC_PARTITIONS: Final = 3
TOPIC_RETENTION_MS: Final = 30 * 24 * 3600 * 1000  # 30 days, as the lab's broker keeps them
# Message-size limits, one place for the topics (max.message.bytes, set by the kafka/redpanda roles
# and by `gourmetgram topics ensure`), the producers (message.max.bytes) and the consumers (fetch
# sizes). A topic accepts records up to 16 MiB, so a 10 MB message is stored and must be handled;
# the dead-letter copy of a message carries at most DEAD_LETTER_PAYLOAD_BYTES of its value (the
# original stays in its topic; the copy points at it), so a dead letter always fits.
TOPIC_MAX_MESSAGE_BYTES: Final = 16 * 1024 * 1024
PRODUCER_MAX_MESSAGE_BYTES: Final = TOPIC_MAX_MESSAGE_BYTES
DEAD_LETTER_PAYLOAD_BYTES: Final = 64 * 1024
DEAD_LETTER_HEADER_BYTES: Final = 8 * 1024

EVENT_TYPE_BY_TOPIC: Final = {
    TOPIC_UPLOADS: "upload",
    TOPIC_VIEWS: "view",
    TOPIC_COMMENTS: "comment",
    TOPIC_FLAGS: "flag",
}
TOPIC_BY_EVENT_TYPE: Final = {v: k for k, v in EVENT_TYPE_BY_TOPIC.items()}

CONSUMER_GROUP_STREAM: Final = "gourmetgram-stream-consumer"
CONSUMER_GROUP_INFERENCE: Final = "gourmetgram-moderation"
CONSUMER_GROUP_AGGREGATION: Final = "airflow_event_aggregator"

# --- Object storage -----------------------------------------------------------------------
BUCKET_IMAGES: Final = "gourmetgram-images"
BUCKET_DATALAKE: Final = "gourmetgram-datalake"
BUCKETS: Final = (BUCKET_IMAGES, BUCKET_DATALAKE)
RAW_PREFIX: Final = "raw/"
WAREHOUSE_URI: Final = f"s3://{BUCKET_DATALAKE}/warehouse"
MODEL_PREFIX: Final = "models/moderation/"
MODEL_FILE: Final = "model.joblib"
SCALER_FILE: Final = "scaler.joblib"
ENCODER_FILE: Final = "encoder.joblib"
METADATA_FILE: Final = "metadata.json"
MODEL_ARTIFACTS: Final = (MODEL_FILE, SCALER_FILE, ENCODER_FILE)

# --- PostgreSQL -----------------------------------------------------------------------------
DATABASE_NAME: Final = "gourmetgram"
TABLE_USERS: Final = "users"
TABLE_IMAGES: Final = "images"
TABLE_COMMENTS: Final = "comments"
TABLE_FLAGS: Final = "flags"
TABLE_MILESTONES: Final = "image_milestones"
TABLE_DECISIONS: Final = "moderation_decisions"
TABLE_OUTBOX: Final = "event_outbox"
EXTRACTED_TABLES: Final = (TABLE_USERS, TABLE_IMAGES, TABLE_COMMENTS, TABLE_FLAGS, TABLE_MILESTONES)

# --- Iceberg ----------------------------------------------------------------------------------
ICEBERG_CATALOG: Final = "gourmetgram"
NS_MODERATION: Final = "moderation"
NS_AGGREGATIONS: Final = "event_aggregations"
ICEBERG_TRAINING_DATA: Final = f"{NS_MODERATION}.training_data"
ICEBERG_LARGE_TRAINING_DATA: Final = f"{NS_MODERATION}.large_training_data"
ICEBERG_WINDOW_TABLES: Final = {
    TOPIC_VIEWS: f"{NS_AGGREGATIONS}.view_windows_5min",
    TOPIC_COMMENTS: f"{NS_AGGREGATIONS}.comment_windows_5min",
    TOPIC_FLAGS: f"{NS_AGGREGATIONS}.flag_windows_5min",
}
BATCH_WINDOW_SECONDS: Final = 300
# Event-level table (event_id, event_type, image_id, event_time): the batch features count exact
# closed windows [t - W, t] over it, as the stream consumer counts the same events in Redis.
ICEBERG_EVENTS: Final = f"{NS_AGGREGATIONS}.events"

# --- Airflow ------------------------------------------------------------------------------------
DAG_AGGREGATION: Final = "redpanda_event_aggregation"
DAG_ETL: Final = "etl_moderation"
AIRFLOW_CONN_POSTGRES: Final = "gourmetgram_postgres"
AIRFLOW_CONN_MINIO: Final = "gourmetgram_minio"

# --- Real-time windows and rules (Redis) ----------------------------------------------------------
WINDOW_1MIN: Final = 60
WINDOW_5MIN: Final = 300
WINDOW_1HR: Final = 3600
WINDOWS: Final = {"1min": WINDOW_1MIN, "5min": WINDOW_5MIN, "1hr": WINDOW_1HR}
LONGEST_WINDOW: Final = WINDOW_1HR

VIRAL_THRESHOLD_VIEWS_5MIN: Final = 100
SUSPICIOUS_THRESHOLD_COMMENTS_1MIN: Final = 10
POPULAR_THRESHOLD_VIEWS_1HR: Final = 50
VIEW_MILESTONES: Final = (10, 100, 1000)

# Log markers of the lab's consumer lines (lab step 4d / 5c): "🎯 MILESTONE REACHED! …".
MARK_MILESTONE: Final = "\N{DIRECT HIT}"
MARK_VIRAL: Final = "\N{FIRE}"
MARK_POPULAR: Final = "\N{WHITE MEDIUM STAR}"
MARK_SUSPICIOUS: Final = "\N{POLICE CARS REVOLVING LIGHT}"
LOG_MILESTONE: Final = f"{MARK_MILESTONE} MILESTONE REACHED!"
LOG_VIRAL: Final = f"{MARK_VIRAL} VIRAL CONTENT ALERT!"
LOG_POPULAR: Final = f"{MARK_POPULAR} POPULAR POST!"
LOG_SUSPICIOUS: Final = f"{MARK_SUSPICIOUS} SUSPICIOUS ACTIVITY ALERT!"

TRIGGER_VIRAL: Final = "viral"
TRIGGER_SUSPICIOUS: Final = "suspicious"
TRIGGER_POPULAR: Final = "popular"  # logged only, never a moderation request
MODERATION_TRIGGERS: Final = (TRIGGER_VIRAL, TRIGGER_SUSPICIOUS)

# --- Moderation decisions ----------------------------------------------------------------------------
SAFE: Final = "SAFE"
REVIEW: Final = "REVIEW"
FLAG: Final = "FLAG"
RECOMMENDATIONS: Final = (SAFE, REVIEW, FLAG)
REVIEW_THRESHOLD: Final = 0.3  # score < 0.3 -> SAFE
FLAG_THRESHOLD: Final = 0.7  # score >= 0.7 -> FLAG, in between -> REVIEW
MODE_HEURISTIC: Final = "heuristic"
MODE_MODEL: Final = "model"
MODE_HEURISTIC_FALLBACK: Final = "heuristic_fallback"
INFERENCE_MODES: Final = (MODE_HEURISTIC, MODE_MODEL, MODE_HEURISTIC_FALLBACK)
MODEL_CHECK_INTERVAL_SECONDS: Final = 30

# --- Batch features and labels -----------------------------------------------------------------------
DECISION_POINTS_MINUTES: Final = (0, 5, 30)
LABEL_COLUMN: Final = "label_needs_moderation_24h"  # the lab's column name, whatever the horizon
# Label = the image was flagged within this long after upload. The lab's 24 h would leave every
# image of a lab session (minutes old) without a label, so the default is lab-scale: 5 minutes.
# Images younger than the horizon at the ETL cutoff have no label yet (right-censored): they are
# left out and counted ("waiting for their label"), never labelled 0. A production deployment
# sets LABEL_HORIZON_HOURS=24 in the Airflow tasks' environment (or the DAG param label_horizon_hours).
LABEL_HORIZON_MINUTES: Final = 5
LABEL_HORIZON_HOURS: Final = LABEL_HORIZON_MINUTES / 60

# --- Notebooks (lab step 7b: `docker run --memory=512m`) -------------------------------------------------
KERNEL_MEMORY_LIMIT_MB: Final = 512  # the Jupyter kernels' cgroup memory cap (no swap)
KERNEL_SPEC_NAME: Final = "python3"  # the capped kernel spec replaces the default one for the deployed Jupyter

# --- Food-11 ---------------------------------------------------------------------------------------------
FOOD11_CLASSES: Final = (
    "Bread",
    "Dairy product",
    "Dessert",
    "Egg",
    "Fried food",
    "Meat",
    "Noodles/Pasta",
    "Rice",
    "Seafood",
    "Soup",
    "Vegetable/Fruit",
)
FOOD11_SPLITS: Final = ("training", "validation", "evaluation")
UNKNOWN_CATEGORY: Final = "Unknown"


def food11_class_dir(index: int) -> str:
    """Directory name of a Food-11 class after the lab's re-layout (class_00 .. class_10)."""
    return f"class_{index:02d}"


# --- Redis key layout (lab step 4b) ---------------------------------------------------------------------
def key_views(image_id: str) -> str:
    return f"image:{image_id}:views"


def key_comments(image_id: str) -> str:
    return f"image:{image_id}:comments"


def key_flags(image_id: str) -> str:
    return f"image:{image_id}:flags"


def key_metadata(image_id: str) -> str:
    return f"image:{image_id}:metadata"


def key_total(image_id: str, kind: str) -> str:
    """kind is one of views, comments, flags."""
    return f"image:{image_id}:total_{kind}"


def key_alert(trigger: str, image_id: str) -> str:
    return f"alert:{trigger}:{image_id}"


KEY_CONSUMER_OFFSETS: Final = "gg:stream-consumer:offsets"
KEY_PENDING_ALERTS: Final = "gg:stream-consumer:pending-alerts"
KEY_PENDING_MILESTONES: Final = "gg:stream-consumer:pending-milestones"
# Per consumer group: topic -> Kafka topic id the stored offsets belong to (re-creation detection),
# and counters (applied, replayed, unknown_image, dead_lettered) the consumer keeps in Redis.
KEY_CONSUMER_TOPIC_IDS: Final = "gg:stream-consumer:topic-ids"
KEY_CONSUMER_COUNTS: Final = "gg:stream-consumer:counts"
# Window/total keys of an image whose upload was not seen (yet) expire after this long instead of
# the 30-day image state TTL: bogus image ids cost Redis memory for two hours at most.
UNKNOWN_IMAGE_STATE_TTL: Final = 2 * LONGEST_WINDOW

# --- Heuristic moderation scorer (lab step 5) --------------------------------------------------------
# Signal weights; the score is their sum clamped to [0, 1]. No signal scores 0 (SAFE); a plain
# viral burst is the bot-like pattern alone (0.3, REVIEW); flags + comment spam reach FLAG (0.7).
HEURISTIC_WEIGHTS: Final = {
    "flags_reported": 0.4,
    "comment_spam": 0.3,
    "unusual_engagement": 0.2,
    "bot_pattern": 0.3,
}
HEURISTIC_SPAM_COMMENTS_1MIN: Final = SUSPICIOUS_THRESHOLD_COMMENTS_1MIN  # "10+ comments per minute"
HEURISTIC_RATIO_THRESHOLD: Final = 0.5  # comments_1hr / views_1hr above this is unusual
HEURISTIC_BOT_VIEWS_5MIN: Final = VIRAL_THRESHOLD_VIEWS_5MIN  # a view burst ...
HEURISTIC_BOT_MAX_ENGAGEMENT: Final = 0.05  # ... with (almost) no comments per view
HEURISTIC_BOT_COMMENTS_TOTAL: Final = 50  # or many comments on an image few people saw
HEURISTIC_BOT_VIEWS_TOTAL: Final = 100

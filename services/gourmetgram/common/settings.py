"""Typed settings from the environment (pydantic-settings).

Every service reads the same variable names; the systemd units get them from an
EnvironmentFile written by Ansible. Secrets have no defaults: a service started without
them fails at once with a message naming the variable.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from gourmetgram.common import names


class _Base(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", case_sensitive=False)


class DatabaseSettings(_Base):
    """DATABASE_URL: a SQLAlchemy URL, e.g. postgresql+psycopg://gourmetgram:***@10.0.0.5:5432/gourmetgram."""

    database_url: SecretStr
    db_pool_size: int = Field(5, ge=1)
    db_connect_timeout: float = Field(5.0, gt=0)


class KafkaSettings(_Base):
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    kafka_client_id: str = "gourmetgram"


class RedisSettings(_Base):
    redis_host: str = "127.0.0.1"
    redis_port: int = 6379
    redis_db: int = 0
    redis_password: SecretStr | None = None
    redis_socket_timeout: float = 5.0


class S3Settings(_Base):
    s3_endpoint_url: str = "http://127.0.0.1:9000"
    aws_access_key_id: str
    aws_secret_access_key: SecretStr
    aws_region: str = "us-east-1"


class LogSettings(_Base):
    log_level: str = "INFO"
    log_format: Literal["kv", "json"] = "kv"


class ApiSettings(DatabaseSettings, KafkaSettings, S3Settings, LogSettings):
    s3_bucket_name: str = names.BUCKET_IMAGES
    # Public URL prefix for stored images; defaults to the S3 endpoint.
    s3_public_url: str | None = None
    max_upload_bytes: int = Field(10 * 1024 * 1024, gt=0)
    # Uploads declaring more pixels than this are refused (413) before any decoding.
    max_image_pixels: int = Field(40_000_000, gt=0)
    outbox_poll_interval: float = Field(0.2, gt=0)
    outbox_batch_size: int = Field(500, ge=1)
    outbox_relay_enabled: bool = True
    kafka_delivery_timeout_ms: int = Field(30_000, ge=1000)
    # HTTP server (gourmetgram-api): API_HOST, API_PORT, API_WORKERS.
    api_host: str = "0.0.0.0"
    api_port: int = Field(8000, ge=1, le=65535)
    api_workers: int = Field(2, ge=1)
    # Sent outbox rows are deleted after this many seconds (checked every outbox_prune_interval).
    outbox_retention_seconds: int = Field(24 * 3600, ge=0)
    outbox_prune_interval: float = Field(300.0, gt=0)
    # Longest pause between relay attempts while the broker is unreachable.
    outbox_max_backoff: float = Field(10.0, gt=0)
    # /health caches the broker and S3 probes for this long (seconds).
    health_cache_seconds: float = Field(2.0, ge=0)


class GeneratorSettings(DatabaseSettings, LogSettings):
    generator_api_url: str = "http://127.0.0.1:8000"
    generator_dataset_path: str = "/var/lib/gourmetgram/food-11"
    # 9,000 events/h with the weighted mix below = 630 uploads/h and 180 flags/h: the reference lab
    # made 600 uploads/h (3,000 events/h, 20 % each). With 100 bootstrap images and the 5-minute
    # label horizon, ~6 minutes of generated data give > 200 labelled training rows (both classes).
    generator_arrival_rate: float = Field(9000.0, gt=0, description="events per hour")
    generator_initial_users: int = Field(10, ge=0)
    generator_initial_images: int = Field(100, ge=0)
    generator_request_timeout: float = Field(30.0, gt=0)
    # Event mix as relative weights, e.g. "view=0.68,comment=0.20,upload=0.07,user=0.03,flag=0.02".
    generator_event_mix: str = "view=0.68,comment=0.20,upload=0.07,user=0.03,flag=0.02"
    generator_seed: int | None = None
    # At most this many requests in flight; an arrival finding them all busy is skipped (counted).
    generator_max_in_flight: int = Field(16, ge=1)
    generator_stats_interval: float = Field(60.0, gt=0)
    # Entities recovered from Postgres at start (most recent first).
    generator_state_limit: int = Field(10_000, ge=1)
    generator_max_retries: int = Field(5, ge=0)
    generator_retry_backoff: float = Field(0.5, gt=0)


class StreamConsumerSettings(KafkaSettings, RedisSettings, DatabaseSettings, LogSettings):
    kafka_consumer_group: str = names.CONSUMER_GROUP_STREAM
    consumer_batch_size: int = Field(500, ge=1)
    consumer_poll_timeout: float = Field(1.0, gt=0)
    viral_threshold_views_5min: int = names.VIRAL_THRESHOLD_VIEWS_5MIN
    suspicious_threshold_comments_1min: int = names.SUSPICIOUS_THRESHOLD_COMMENTS_1MIN
    popular_threshold_views_1hr: int = names.POPULAR_THRESHOLD_VIEWS_1HR
    # An alert fires at most once per image and trigger within this many seconds.
    alert_cooldown_seconds: int = Field(names.LONGEST_WINDOW, ge=1)
    # Totals and metadata expire after this long without activity (bounded Redis memory).
    image_state_ttl_seconds: int = Field(30 * 24 * 3600, ge=names.LONGEST_WINDOW)


InferenceMode = Literal["heuristic", "model"]


class InferenceSettings(KafkaSettings, RedisSettings, DatabaseSettings, S3Settings, LogSettings):
    kafka_consumer_group: str = names.CONSUMER_GROUP_INFERENCE
    inference_mode: InferenceMode = "heuristic"
    model_bucket: str = names.BUCKET_DATALAKE
    model_prefix: str = names.MODEL_PREFIX
    model_check_interval: float = Field(float(names.MODEL_CHECK_INTERVAL_SECONDS), gt=0)
    moderation_threshold: float = Field(names.FLAG_THRESHOLD, gt=0, le=1)


class DoctorSettings(KafkaSettings, DatabaseSettings):
    """Thresholds of ``gourmetgram doctor`` (DOCTOR_*)."""

    # Events a consumer group may be behind before the doctor warns (a stopped group fails at 1).
    doctor_lag_warn: int = Field(10_000, ge=1)
    # An unpublished outbox row older than this means the relay is not keeping up.
    doctor_outbox_max_age: float = Field(60.0, gt=0)
    # Dead-lettered messages within the last hour that make a failing verdict (any one warns).
    doctor_dead_letter_fail: int = Field(100, ge=1)
    doctor_disk_paths: tuple[str, ...] = ("/", "/var/lib")
    doctor_disk_warn_percent: float = Field(80.0, gt=0, le=100)
    doctor_disk_fail_percent: float = Field(90.0, gt=0, le=100)

"""The relational schema (one place) and database helpers.

The tables keep the columns the lab's SQL reads (users, images, comments, flags,
image_milestones, moderation_decisions) and add what correctness needs: unique
milestones, one decision per moderation request, indexes on foreign keys and a
transactional outbox for events. The schema is created by Alembic migrations
(``gourmetgram db upgrade``), never at import time.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from gourmetgram.common import names

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


class Base(DeclarativeBase):
    pass


def _uuid_pk() -> Mapped[uuid.UUID]:
    return mapped_column(UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()"))


def _created() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())


class User(Base):
    __tablename__ = names.TABLE_USERS
    id: Mapped[uuid.UUID] = _uuid_pk()
    username: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    created_at: Mapped[datetime] = _created()


class Image(Base):
    __tablename__ = names.TABLE_IMAGES
    id: Mapped[uuid.UUID] = _uuid_pk()
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), nullable=False, index=True)
    s3_url: Mapped[str] = mapped_column(Text, nullable=False)
    s3_key: Mapped[str] = mapped_column(Text, nullable=False, unique=True)
    content_type: Mapped[str] = mapped_column(String(64), nullable=False)
    size_bytes: Mapped[int] = mapped_column(Integer, nullable=False)
    caption: Mapped[str | None] = mapped_column(Text)
    category: Mapped[str | None] = mapped_column(Text)
    uploaded_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now(), index=True
    )
    views: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))


class Comment(Base):
    __tablename__ = names.TABLE_COMMENTS
    id: Mapped[uuid.UUID] = _uuid_pk()
    image_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("images.id"), nullable=False, index=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), nullable=False, index=True)
    content: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = _created()


class Flag(Base):
    __tablename__ = names.TABLE_FLAGS
    __table_args__ = (CheckConstraint("image_id IS NOT NULL OR comment_id IS NOT NULL", name="flags_target_present"),)
    id: Mapped[uuid.UUID] = _uuid_pk()
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), nullable=False, index=True)
    image_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("images.id"), index=True)
    comment_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("comments.id"), index=True)
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = _created()


class ImageMilestone(Base):
    __tablename__ = names.TABLE_MILESTONES
    __table_args__ = (UniqueConstraint("image_id", "milestone_type", "milestone_value", name="uq_image_milestone"),)
    id: Mapped[uuid.UUID] = _uuid_pk()
    image_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("images.id"), nullable=False)
    milestone_type: Mapped[str] = mapped_column(String(20), nullable=False)
    milestone_value: Mapped[int] = mapped_column(Integer, nullable=False)
    reached_at: Mapped[datetime] = _created()


class ModerationDecision(Base):
    __tablename__ = names.TABLE_DECISIONS
    __table_args__ = (
        CheckConstraint("recommendation IN ('SAFE', 'REVIEW', 'FLAG')", name="moderation_recommendation_valid"),
        CheckConstraint("inference_mode IN ('heuristic', 'model', 'heuristic_fallback')", name="moderation_mode_valid"),
        Index("idx_moderation_recommendation", "recommendation"),
    )
    id: Mapped[uuid.UUID] = _uuid_pk()
    request_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False, unique=True)
    image_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False, index=True)
    inference_mode: Mapped[str] = mapped_column(String(20), nullable=False)
    moderation_probability: Mapped[float] = mapped_column(Float, nullable=False)
    recommendation: Mapped[str] = mapped_column(String(10), nullable=False)
    trigger_type: Mapped[str | None] = mapped_column(String(30))
    model_version: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    reasoning: Mapped[list[str] | None] = mapped_column(JSONB)
    features: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    created_at: Mapped[datetime] = _created()


class OutboxEvent(Base):
    """Transactional outbox: written in the same transaction as the state change it reports,
    relayed to Kafka (acks=all) and marked sent only after the broker acknowledged it."""

    __tablename__ = names.TABLE_OUTBOX
    __table_args__ = (Index("idx_outbox_unsent", "id", postgresql_where=text("sent_at IS NULL")),)
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    event_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False, unique=True)
    topic: Mapped[str] = mapped_column(String(128), nullable=False)
    key: Mapped[str | None] = mapped_column(String(128))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    created_at: Mapped[datetime] = _created()
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


def sqlalchemy_url(url: str) -> str:
    """Accept postgres://, postgresql:// and postgresql+psycopg2:// URLs; use psycopg 3."""
    for prefix in ("postgres://", "postgresql://", "postgresql+psycopg2://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def libpq_url(url: str) -> str:
    """The same URL for plain psycopg / libpq (no SQLAlchemy driver suffix)."""
    return "postgresql://" + sqlalchemy_url(url).split("://", 1)[1]


@lru_cache(maxsize=8)
def engine_for(url: str, pool_size: int = 5, connect_timeout: float = 5.0) -> Engine:
    return create_engine(
        sqlalchemy_url(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        pool_recycle=1800,
        connect_args={"connect_timeout": int(connect_timeout), "application_name": "gourmetgram"},
    )


def alembic_config(url: str):  # type: ignore[no-untyped-def]
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", sqlalchemy_url(url).replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Apply migrations up to ``revision`` (idempotent)."""
    from alembic import command

    command.upgrade(alembic_config(url), revision)


def current_revision(url: str) -> str | None:
    from alembic.migration import MigrationContext

    with engine_for(url).connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()

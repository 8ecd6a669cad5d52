"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "event_outbox",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("event_id", sa.UUID(), nullable=False),
        sa.Column("topic", sa.String(length=128), nullable=False),
        sa.Column("key", sa.String(length=128), nullable=True),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("event_id"),
    )
    op.create_index(
        "idx_outbox_unsent", "event_outbox", ["id"], unique=False, postgresql_where=sa.text("sent_at IS NULL")
    )
    op.create_table(
        "moderation_decisions",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("request_id", sa.UUID(), nullable=False),
        sa.Column("image_id", sa.UUID(), nullable=False),
        sa.Column("inference_mode", sa.String(length=20), nullable=False),
        sa.Column("moderation_probability", sa.Float(), nullable=False),
        sa.Column("recommendation", sa.String(length=10), nullable=False),
        sa.Column("trigger_type", sa.String(length=30), nullable=True),
        sa.Column("model_version", sa.Integer(), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("reasoning", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("features", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "inference_mode IN ('heuristic', 'model', 'heuristic_fallback')", name="moderation_mode_valid"
        ),
        sa.CheckConstraint("recommendation IN ('SAFE', 'REVIEW', 'FLAG')", name="moderation_recommendation_valid"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("request_id"),
    )
    op.create_index("idx_moderation_recommendation", "moderation_decisions", ["recommendation"], unique=False)
    op.create_index(op.f("ix_moderation_decisions_image_id"), "moderation_decisions", ["image_id"], unique=False)
    op.create_table(
        "users",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("username"),
    )
    op.create_table(
        "images",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("s3_url", sa.Text(), nullable=False),
        sa.Column("s3_key", sa.Text(), nullable=False),
        sa.Column("content_type", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("caption", sa.Text(), nullable=True),
        sa.Column("category", sa.Text(), nullable=True),
        sa.Column("uploaded_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("views", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("s3_key"),
    )
    op.create_index(op.f("ix_images_uploaded_at"), "images", ["uploaded_at"], unique=False)
    op.create_index(op.f("ix_images_user_id"), "images", ["user_id"], unique=False)
    op.create_table(
        "comments",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("image_id", sa.UUID(), nullable=False),
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["image_id"],
            ["images.id"],
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_comments_image_id"), "comments", ["image_id"], unique=False)
    op.create_index(op.f("ix_comments_user_id"), "comments", ["user_id"], unique=False)
    op.create_table(
        "image_milestones",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("image_id", sa.UUID(), nullable=False),
        sa.Column("milestone_type", sa.String(length=20), nullable=False),
        sa.Column("milestone_value", sa.Integer(), nullable=False),
        sa.Column("reached_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["image_id"],
            ["images.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("image_id", "milestone_type", "milestone_value", name="uq_image_milestone"),
    )
    op.create_table(
        "flags",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("image_id", sa.UUID(), nullable=True),
        sa.Column("comment_id", sa.UUID(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("image_id IS NOT NULL OR comment_id IS NOT NULL", name="flags_target_present"),
        sa.ForeignKeyConstraint(
            ["comment_id"],
            ["comments.id"],
        ),
        sa.ForeignKeyConstraint(
            ["image_id"],
            ["images.id"],
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_flags_comment_id"), "flags", ["comment_id"], unique=False)
    op.create_index(op.f("ix_flags_image_id"), "flags", ["image_id"], unique=False)
    op.create_index(op.f("ix_flags_user_id"), "flags", ["user_id"], unique=False)


def downgrade() -> None:

    op.drop_index(op.f("ix_flags_user_id"), table_name="flags")
    op.drop_index(op.f("ix_flags_image_id"), table_name="flags")
    op.drop_index(op.f("ix_flags_comment_id"), table_name="flags")
    op.drop_table("flags")
    op.drop_table("image_milestones")
    op.drop_index(op.f("ix_comments_user_id"), table_name="comments")
    op.drop_index(op.f("ix_comments_image_id"), table_name="comments")
    op.drop_table("comments")
    op.drop_index(op.f("ix_images_user_id"), table_name="images")
    op.drop_index(op.f("ix_images_uploaded_at"), table_name="images")
    op.drop_table("images")
    op.drop_table("users")
    op.drop_index(op.f("ix_moderation_decisions_image_id"), table_name="moderation_decisions")
    op.drop_index("idx_moderation_recommendation", table_name="moderation_decisions")
    op.drop_table("moderation_decisions")
    op.drop_index("idx_outbox_unsent", table_name="event_outbox", postgresql_where=sa.text("sent_at IS NULL"))
    op.drop_table("event_outbox")

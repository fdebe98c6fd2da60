"""The REST API's tables: cases, visits, assessments, users, tokens, MRI jobs, access events, seen jti.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "patient_case",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("label", sa.String(200), nullable=False),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
        sa.Column("created_by", sa.String(100), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
    )
    op.create_index("ix_patient_case_label", "patient_case", ["label"])
    op.create_table(
        "case_visit",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("patient_case.id", ondelete="CASCADE"), nullable=False),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("created_by", sa.String(100), nullable=False),
    )
    op.create_index("ix_case_visit_case_id", "case_visit", ["case_id"])
    op.create_table(
        "case_assessment",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("patient_case.id", ondelete="CASCADE"), nullable=False),
        sa.Column("case_version", sa.Integer(), nullable=False),
        sa.Column("assessed_on", sa.String(10), nullable=False),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("hipdx_version", sa.String(40), nullable=False),
        sa.Column("knowledge_base_digest", sa.String(80), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("created_by", sa.String(100), nullable=False),
    )
    op.create_index("ix_case_assessment_case_id", "case_assessment", ["case_id"])
    op.create_table(
        "app_user",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("username", sa.String(100), nullable=False, unique=True),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("password_hash", sa.String(200), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
    )
    op.create_table(
        "auth_token",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("app_user.id", ondelete="CASCADE"), nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("expires_at", WHEN, nullable=False),
    )
    op.create_index("ix_auth_token_user_id", "auth_token", ["user_id"])
    op.create_index("ix_auth_token_expires_at", "auth_token", ["expires_at"])
    op.create_table(
        "mri_job",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("stage", sa.String(200), nullable=False),
        sa.Column("files", sa.Integer(), nullable=False),
        sa.Column("result", sa.JSON()),
        sa.Column("error", sa.Text()),
        sa.Column("created_by", sa.String(100), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
    )
    op.create_table(
        "access_event",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("recorded_at", WHEN, nullable=False),
        sa.Column("username", sa.String(100)),
        sa.Column("role", sa.String(20)),
        sa.Column("action", sa.String(1), nullable=False),
        sa.Column("what", sa.String(100), nullable=False),
        sa.Column("method", sa.String(8), nullable=False),
        sa.Column("path", sa.String(200), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("source_address", sa.String(100)),
    )
    op.create_index("ix_access_event_recorded_at", "access_event", ["recorded_at"])
    op.create_index("ix_access_event_username", "access_event", ["username"])
    op.create_index("ix_access_event_what", "access_event", ["what"])
    op.create_table(
        "seen_jti",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("issuer", sa.String(500), nullable=False),
        sa.Column("jti", sa.String(200), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.UniqueConstraint("issuer", "jti", name="uq_seen_jti"),
    )
    op.create_index("ix_seen_jti_expires_at", "seen_jti", ["expires_at"])


def downgrade() -> None:
    for table in ("seen_jti", "access_event", "mri_job", "auth_token", "app_user", "case_assessment",
                  "case_visit", "patient_case"):
        op.drop_table(table)

"""The audit tables: cds_call and cds_feedback (dropped again by 0004).

Revision ID: 0001
Revises:
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cds_call",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("method", sa.String(8), nullable=False),
        sa.Column("path", sa.String(200), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("issuer", sa.String(500)),
        sa.Column("tenant", sa.String(200)),
        sa.Column("jti", sa.String(200)),
        sa.Column("hook_instance", sa.String(100)),
        sa.Column("patient", sa.String(100)),
        sa.Column("cards", sa.Integer()),
        sa.Column("indicator", sa.String(10)),
        sa.Column("card_uuid", sa.String(40)),
        sa.Column("hipdx_version", sa.String(40), nullable=False),
        sa.Column("knowledge_base_digest", sa.String(40), nullable=False),
    )
    op.create_index("ix_cds_call_recorded_at", "cds_call", ["recorded_at"])
    op.create_index("ix_cds_call_hook_instance", "cds_call", ["hook_instance"])
    op.create_index("ix_cds_call_patient", "cds_call", ["patient"])
    op.create_index("ix_cds_call_card_uuid", "cds_call", ["card_uuid"])
    op.create_table(
        "cds_feedback",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("issuer", sa.String(500)),
        sa.Column("card_uuid", sa.String(100), nullable=False),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("override_reason_system", sa.String(500)),
        sa.Column("override_reason_code", sa.String(100)),
        sa.Column("outcome_timestamp", sa.String(40)),
    )
    op.create_index("ix_cds_feedback_recorded_at", "cds_feedback", ["recorded_at"])
    op.create_index("ix_cds_feedback_card_uuid", "cds_feedback", ["card_uuid"])


def downgrade() -> None:
    op.drop_table("cds_feedback")
    op.drop_table("cds_call")

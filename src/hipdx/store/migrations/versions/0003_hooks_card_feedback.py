"""CDS Hooks feedback per card: accepted suggestions, coded override reason (issue 14, branch i14-hooks).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cds_card_feedback",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("service_id", sa.String(100), nullable=False),
        sa.Column("issuer", sa.String(500)),
        sa.Column("card_uuid", sa.String(100), nullable=False),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("accepted_suggestions", sa.String(2000)),
        sa.Column("override_reason_system", sa.String(500)),
        sa.Column("override_reason_code", sa.String(100)),
        sa.Column("override_reason_display", sa.String(300)),
        sa.Column("user_comment_given", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("outcome_timestamp", sa.String(40), nullable=False),
    )
    op.create_index("ix_cds_card_feedback_recorded_at", "cds_card_feedback", ["recorded_at"])
    op.create_index("ix_cds_card_feedback_service_id", "cds_card_feedback", ["service_id"])
    op.create_index("ix_cds_card_feedback_card_uuid", "cds_card_feedback", ["card_uuid"])


def downgrade() -> None:
    op.drop_table("cds_card_feedback")

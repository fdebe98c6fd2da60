"""Sign-in attempts (audit and throttle), MRI job heartbeats; the obsolete cds_feedback table goes.

- ``sign_in_attempt``: every sign-in, refused or not (who tried, when, from where, through which
  door, the outcome; never the password). The refusals are exported as AuditEvents and counted
  by the throttle, which every worker shares through this table.
- ``mri_job.heartbeat_at``: the time the worker running (or holding in its queue) a job last said
  it is alive; a job whose heartbeat is too old is failed (its worker died).
- ``cds_feedback`` (revision 0001) is dropped: nothing writes or reads it since card feedback has
  its own table (``cds_card_feedback``, revision 0003). The downgrade recreates it, empty.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "sign_in_attempt",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("attempted_at", WHEN, nullable=False),
        sa.Column("username", sa.String(100), nullable=False),
        sa.Column("source_address", sa.String(100)),
        sa.Column("channel", sa.String(20), nullable=False),
        sa.Column("outcome", sa.String(20), nullable=False),
    )
    op.create_index("ix_sign_in_attempt_attempted_at", "sign_in_attempt", ["attempted_at"])
    op.create_index("ix_sign_in_attempt_username", "sign_in_attempt", ["username", "attempted_at"])
    op.create_index("ix_sign_in_attempt_source_address", "sign_in_attempt", ["source_address", "attempted_at"])
    with op.batch_alter_table("mri_job") as batch:
        batch.add_column(sa.Column("heartbeat_at", WHEN))
    op.drop_index("ix_cds_feedback_card_uuid", table_name="cds_feedback")
    op.drop_index("ix_cds_feedback_recorded_at", table_name="cds_feedback")
    op.drop_table("cds_feedback")


def downgrade() -> None:
    op.create_table(
        "cds_feedback",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("recorded_at", WHEN, nullable=False),
        sa.Column("issuer", sa.String(500)),
        sa.Column("card_uuid", sa.String(100), nullable=False),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("override_reason_system", sa.String(500)),
        sa.Column("override_reason_code", sa.String(100)),
        sa.Column("outcome_timestamp", sa.String(40)),
    )
    op.create_index("ix_cds_feedback_recorded_at", "cds_feedback", ["recorded_at"])
    op.create_index("ix_cds_feedback_card_uuid", "cds_feedback", ["card_uuid"])
    with op.batch_alter_table("mri_job") as batch:
        batch.drop_column("heartbeat_at")
    op.drop_table("sign_in_attempt")

"""The web wing (issue 15): an MRI job tied to its case, and the SMART launches in progress.

- ``mri_job.case_id``: the case an MRI was uploaded from (NULL for an upload through the REST
  API, which names no case; set to NULL when the case is deleted, the job's files stay until
  the job is removed); ``mri_job.added_findings``: the findings the clinician confirmed into
  that case (which facts of the case came from this MRI).
- ``smart_launch``: one SMART App Launch between its redirect to the authorization server and
  the callback (state, PKCE verifier, issuer, launch), read once and deleted, with an expiry:
  any worker of the service can finish a launch another worker started.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("mri_job") as batch:
        batch.add_column(sa.Column("case_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("added_findings", sa.JSON(), nullable=True))
        batch.create_foreign_key("fk_mri_job_case_id", "patient_case", ["case_id"], ["id"], ondelete="SET NULL")
        batch.create_index("ix_mri_job_case_id", ["case_id"])
    op.create_table(
        "smart_launch",
        sa.Column("state", sa.String(64), primary_key=True),
        sa.Column("verifier", sa.String(128)),
        sa.Column("issuer", sa.String(500), nullable=False),
        sa.Column("launch", sa.String(2000)),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("expires_at", WHEN, nullable=False),
    )
    op.create_index("ix_smart_launch_expires_at", "smart_launch", ["expires_at"])


def downgrade() -> None:
    op.drop_table("smart_launch")
    with op.batch_alter_table("mri_job") as batch:
        batch.drop_index("ix_mri_job_case_id")
        batch.drop_constraint("fk_mri_job_case_id", type_="foreignkey")
        batch.drop_column("added_findings")
        batch.drop_column("case_id")

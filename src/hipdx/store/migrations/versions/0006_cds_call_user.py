"""The user of a CDS call: ``cds_call.user_ref``.

The clinician (or other user) in whose session the hook fired, as the CDS client names them in
``context.userId`` (``Practitioner/123``, ``PractitionerRole/...``; patient-view and the order
hooks require it): with the token's issuer (the EHR), the "who" of the call in the audit trail.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("cds_call") as batch:
        batch.add_column(sa.Column("user_ref", sa.String(100), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("cds_call") as batch:
        batch.drop_column("user_ref")

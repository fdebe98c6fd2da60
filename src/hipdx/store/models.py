"""The audit tables: one row per CDS call and per card feedback item. No token, no payload, no clinical content.

Following IHE Basic Audit Log Patterns in spirit: who called (issuer, tenant, jti), about
whom (the patient reference), what for (service, hook instance), what came back (HTTP
status, number of cards, the card's indicator and uuid), how fast, and with which hipdx and
knowledge base.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, DateTime, Float, Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class CdsCall(Base):
    __tablename__ = "cds_call"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    recorded_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)
    method: Mapped[str] = mapped_column(String(8))
    path: Mapped[str] = mapped_column(String(200))
    status_code: Mapped[int] = mapped_column(Integer)
    latency_ms: Mapped[float] = mapped_column(Float)
    issuer: Mapped[str | None] = mapped_column(String(500))
    tenant: Mapped[str | None] = mapped_column(String(200))
    jti: Mapped[str | None] = mapped_column(String(200))
    hook_instance: Mapped[str | None] = mapped_column(String(100), index=True)
    patient: Mapped[str | None] = mapped_column(String(100), index=True)
    #: the user in whose session the hook fired (context.userId, e.g. Practitioner/123; revision 0006)
    user_ref: Mapped[str | None] = mapped_column(String(100))
    cards: Mapped[int | None] = mapped_column(Integer)
    indicator: Mapped[str | None] = mapped_column(String(10))
    card_uuid: Mapped[str | None] = mapped_column(String(40), index=True)
    hipdx_version: Mapped[str] = mapped_column(String(40))
    knowledge_base_digest: Mapped[str] = mapped_column(String(40))


class CdsCardFeedback(Base):
    """One CDS Hooks feedback item: the card accepted (with the suggestions taken) or overridden (with the coded reason).

    The override's free-text ``userComment`` is not stored (it may hold patient data): only
    whether one was given.
    """

    __tablename__ = "cds_card_feedback"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    recorded_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)
    service_id: Mapped[str] = mapped_column(String(100), index=True)
    issuer: Mapped[str | None] = mapped_column(String(500))
    card_uuid: Mapped[str] = mapped_column(String(100), index=True)
    outcome: Mapped[str] = mapped_column(String(20))
    accepted_suggestions: Mapped[str | None] = mapped_column(String(2000))
    override_reason_system: Mapped[str | None] = mapped_column(String(500))
    override_reason_code: Mapped[str | None] = mapped_column(String(100))
    override_reason_display: Mapped[str | None] = mapped_column(String(300))
    user_comment_given: Mapped[bool] = mapped_column(Boolean, default=False)
    outcome_timestamp: Mapped[str] = mapped_column(String(40))

"""The tables of the REST API: cases and their visits, stored assessments, users and their
tokens, MRI jobs, the access log of patient data and the shared JWT replay cache.

A case is kept as the JSON document the case model validates (``hipdx schema``), its visits as
rows of their own in the order they were added; the case the API assesses is the document with
its visits. An assessment is stored whole, with the hipdx version and knowledge-base digest
that made it.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from hipdx.store.models import Base


class StoredCase(Base):
    __tablename__ = "patient_case"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    label: Mapped[str] = mapped_column(String(200), index=True)
    document: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str] = mapped_column(String(100))
    version: Mapped[int] = mapped_column(Integer, default=1)


class StoredVisit(Base):
    __tablename__ = "case_visit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("patient_case.id", ondelete="CASCADE"), index=True)
    document: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str] = mapped_column(String(100))


class StoredAssessment(Base):
    __tablename__ = "case_assessment"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("patient_case.id", ondelete="CASCADE"), index=True)
    case_version: Mapped[int] = mapped_column(Integer)
    assessed_on: Mapped[str] = mapped_column(String(10))
    document: Mapped[dict] = mapped_column(JSON)
    hipdx_version: Mapped[str] = mapped_column(String(40))
    knowledge_base_digest: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str] = mapped_column(String(100))


class User(Base):
    __tablename__ = "app_user"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    role: Mapped[str] = mapped_column(String(20))
    password_hash: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class Token(Base):
    """A bearer token or a browser session: only the SHA-256 of the secret is stored."""

    __tablename__ = "auth_token"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(10))  # "bearer" or "session"
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)


class MriJob(Base):
    __tablename__ = "mri_job"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    state: Mapped[str] = mapped_column(String(20))  # queued, running, done, failed
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    stage: Mapped[str] = mapped_column(String(200))
    files: Mapped[int] = mapped_column(Integer)
    result: Mapped[dict | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    #: the case the MRI was uploaded from (None: a REST API upload, or the case was deleted)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("patient_case.id", ondelete="SET NULL"), index=True, nullable=True)
    #: the imaging findings the clinician confirmed into that case (which facts came from this MRI)
    added_findings: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    #: when the worker holding the job (queued or running) last said it is alive (revision 0004)
    heartbeat_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class SmartLaunch(Base):
    """A SMART App Launch under way (hipdx.web.smart): read once, then deleted; expires."""

    __tablename__ = "smart_launch"

    state: Mapped[str] = mapped_column(String(64), primary_key=True)
    verifier: Mapped[str | None] = mapped_column(String(128), nullable=True)
    issuer: Mapped[str] = mapped_column(String(500))
    launch: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    document: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)


class AccessEvent(Base):
    """One read or write of patient data through the REST API: who, when, what, from where."""

    __tablename__ = "access_event"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    recorded_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)
    username: Mapped[str | None] = mapped_column(String(100), index=True)
    role: Mapped[str | None] = mapped_column(String(20))
    action: Mapped[str] = mapped_column(String(1))  # FHIR AuditEvent.action: C R U D E
    what: Mapped[str] = mapped_column(String(100), index=True)  # e.g. Case/12, MriJob/<id>, assessment
    method: Mapped[str] = mapped_column(String(8))
    path: Mapped[str] = mapped_column(String(200))
    status_code: Mapped[int] = mapped_column(Integer)
    source_address: Mapped[str | None] = mapped_column(String(100))


class SeenJti(Base):
    """The JWT ``jti`` replay cache, shared by every worker; rows expire with their tokens."""

    __tablename__ = "seen_jti"
    __table_args__ = (UniqueConstraint("issuer", "jti", name="uq_seen_jti"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    issuer: Mapped[str] = mapped_column(String(500))
    jti: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[float] = mapped_column(Float, index=True)


class SignInAttempt(Base):
    """One sign-in, refused or not: who tried, when, from where, through which door, the outcome.

    Never the password. ``outcome`` is ``signed-in``, ``unknown-user``, ``wrong-password``,
    ``disabled`` or ``throttled``; the throttle counts the refusals of every worker here.
    """

    __tablename__ = "sign_in_attempt"
    __table_args__ = (Index("ix_sign_in_attempt_username", "username", "attempted_at"),
                      Index("ix_sign_in_attempt_source_address", "source_address", "attempted_at"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    attempted_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)
    username: Mapped[str] = mapped_column(String(100))
    source_address: Mapped[str | None] = mapped_column(String(100))
    channel: Mapped[str] = mapped_column(String(20))  # api-token, api-session, web
    outcome: Mapped[str] = mapped_column(String(20))

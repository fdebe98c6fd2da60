"""Writing and reading the audit log of the CDS service."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hipdx.store.commit import GroupCommit
from hipdx.store.models import CdsCall, CdsCardFeedback
from hipdx.store.replay import delete_expired
from hipdx.store.tables import SeenJti


@dataclass
class CallRecord:
    """What the service knows about one call when it answers it."""

    method: str
    path: str
    status_code: int
    latency_ms: float
    issuer: str | None = None
    tenant: str | None = None
    jti: str | None = None
    hook_instance: str | None = None
    patient: str | None = None
    user_ref: str | None = None
    cards: int | None = None
    indicator: str | None = None
    card_uuid: str | None = None


@dataclass
class CardFeedback:
    """One CDS Hooks feedback item, checked: which card of which service, accepted or overridden and why."""

    service_id: str
    card_uuid: str
    outcome: str  # accepted or overridden
    outcome_timestamp: str
    accepted_suggestions: str | None = None  # the accepted suggestions' uuids, comma-separated
    override_reason_system: str | None = None
    override_reason_code: str | None = None
    override_reason_display: str | None = None
    user_comment_given: bool = False


class AuditStore:
    """Writes and reads the audit tables."""

    def __init__(self, engine: Engine, hipdx_version: str, knowledge_base_digest: str) -> None:
        self.engine = engine
        self.hipdx_version = hipdx_version
        self.knowledge_base_digest = knowledge_base_digest
        #: the calls of concurrent requests committed together (expired jti rows deleted now and then)
        self.writer = GroupCommit(engine, housekeeping=lambda session: delete_expired(session, time.time()))

    def record_call(
        self, record: CallRecord, when: dt.datetime | None = None, jti: Sequence[dict[str, Any]] = ()
    ) -> bool:
        """Record one call, with the JWT ``jti`` pairs its token check left (:data:`hipdx.store.replay.PENDING_JTI`),
        in one transaction shared with the calls being recorded at the same time.

        Returns False, having recorded nothing, when a pair of ``jti`` is already in the
        database (a replay that raced past the check): the caller answers 401 and records that.
        Raises what the database raised otherwise.
        """
        values = {
            "recorded_at": when or dt.datetime.now(dt.timezone.utc),
            "hipdx_version": self.hipdx_version,
            "knowledge_base_digest": self.knowledge_base_digest,
            **{k: _clip(v) for k, v in vars(record).items()},
        }
        try:
            self.writer.write([(CdsCall, values), *((SeenJti, pair) for pair in jti)])
        except IntegrityError:
            if not jti:
                raise
            return False
        return True

    def record_card_feedback(self, item: CardFeedback, issuer: str | None, when: dt.datetime | None = None) -> None:
        """Store one checked feedback item (:func:`hipdx.service.feedback.parse_feedback`) in ``cds_card_feedback``."""
        row = CdsCardFeedback(
            recorded_at=when or dt.datetime.now(dt.timezone.utc),
            issuer=_clip(issuer, 500),
            **{k: _clip(v, 2000) for k, v in vars(item).items()},
        )
        with Session(self.engine) as session, session.begin():
            session.add(row)

    def card_feedback(self, limit: int = 100) -> list[CdsCardFeedback]:
        with Session(self.engine, expire_on_commit=False) as session:
            return list(session.scalars(select(CdsCardFeedback).order_by(CdsCardFeedback.id.desc()).limit(limit)))

    def calls(self, limit: int = 100) -> list[CdsCall]:
        """The newest ``limit`` calls (a look at recent calls; an export reads :mod:`hipdx.store.trail`, uncapped)."""
        with Session(self.engine, expire_on_commit=False) as session:
            return list(session.scalars(select(CdsCall).order_by(CdsCall.id.desc()).limit(limit)))


def _clip(value: Any, length: int = 200) -> Any:
    return value[:length] if isinstance(value, str) else value

"""Cases with their visits, the assessments made of them, MRI jobs and the access log (the REST API's store).

Every function takes the engine and commits before it returns: what it returns has been
written (SQLite with ``synchronous=FULL``, PostgreSQL's default ``synchronous_commit``), so an
acknowledged write survives a crash of the server. A write given ``audit`` (an access event,
:class:`~hipdx.store.tables.AccessEvent`'s fields but its time) records it in the write's own
transaction (:func:`record_in`): the change and its access record are written together or not at all.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, func, or_, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from hipdx.errors import DatabaseError
from hipdx.store.tables import AccessEvent, MriJob, StoredAssessment, StoredCase, StoredVisit


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _utc(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


@dataclass(frozen=True)
class CaseRecord:
    id: int
    label: str
    document: dict[str, Any]
    visits: list[dict[str, Any]]
    version: int
    created_at: dt.datetime
    updated_at: dt.datetime
    created_by: str

    def full_case(self) -> dict[str, Any]:
        """The case document with its stored visits appended to the visits it was created with."""
        document = dict(self.document)
        if self.visits:
            document["visits"] = list(document.get("visits") or []) + self.visits
        return document


def _record(session: Session, row: StoredCase) -> CaseRecord:
    visits = session.scalars(select(StoredVisit.document).where(StoredVisit.case_id == row.id).order_by(StoredVisit.id))
    return CaseRecord(row.id, row.label, row.document, list(visits), row.version, _utc(row.created_at),
                      _utc(row.updated_at), row.created_by)


def create_case(engine: Engine, label: str, document: dict[str, Any], user: str,
                audit: dict[str, Any] | None = None) -> CaseRecord:
    """Store a case; ``audit``'s object is its number (``Case/<id>``, or the caller's name for it: :func:`named`)."""
    now = _now()
    with Session(engine, expire_on_commit=False) as session, session.begin():
        row = StoredCase(label=label, document=document, created_at=now, updated_at=now, created_by=user, version=1)
        session.add(row)
        session.flush()
        record_in(session, named(audit, f"Case/{row.id}", row.id))
        return _record(session, row)


def get_case(engine: Engine, case_id: int) -> CaseRecord | None:
    with Session(engine) as session:
        row = session.get(StoredCase, case_id)
        return None if row is None else _record(session, row)


class StaleVersion(Exception):
    """The case changed since the version the writer read (another write came in between).

    ``case_id`` and ``current`` (the version it is at now) name it for the answer (HTTP 412, the web's 409).
    """

    def __init__(self, case_id: int, current: int) -> None:
        super().__init__(f"case {case_id} is at version {current}")
        self.case_id, self.current = case_id, current


def _claim(session: Session, case_id: int, expected: int | Collection[int] | None) -> StoredCase | None:
    """Take the next version of the case in ``session``'s transaction, first of all; the row as it is now.

    One conditional ``UPDATE ... SET version = version + 1 WHERE id = ? [AND version = ?]``:
    atomic on SQLite (the statement takes the database's write lock; a ``SELECT`` before it
    would run outside the transaction) and on PostgreSQL (the row's lock), so of two writers
    holding the same version exactly one wins; the other waits for the lock, then finds its
    version gone. None when there is no such case.

    Raises
    ------
    StaleVersion
        ``expected`` is given (a version, or several: any of them) and the case is no longer at it.
    """
    claim = update(StoredCase).where(StoredCase.id == case_id)
    if isinstance(expected, int):
        claim = claim.where(StoredCase.version == expected)
    elif expected is not None:  # any of these (an If-Match list)
        claim = claim.where(StoredCase.version.in_(sorted(expected) or [-1]))
    done = session.execute(claim.values(version=StoredCase.version + 1, updated_at=_now())
                           .execution_options(synchronize_session=False))
    if not done.rowcount:
        current = session.scalar(select(StoredCase.version).where(StoredCase.id == case_id))
        if current is None:
            return None
        raise StaleVersion(case_id, current)
    return session.get(StoredCase, case_id, populate_existing=True)


def update_case(engine: Engine, case_id: int, label: str, document: dict[str, Any],
                audit: dict[str, Any] | None = None, from_job: tuple[str, Any] | None = None,
                version: int | Collection[int] | None = None) -> CaseRecord | None:
    """Replace a case's document, with its access record ``audit``; ``from_job``: (MRI job id, the
    findings) when the update adds a job's confirmed findings, marked on the job in the same transaction.

    ``version``: the version the writer read; the case is replaced only if it is still at it
    (else :class:`StaleVersion`, nothing written). None when there is no such case.
    """
    with Session(engine, expire_on_commit=False) as session, session.begin():
        row = _claim(session, case_id, version)
        if row is None:
            return None
        row.label, row.document = label, document
        if from_job is not None:
            job = session.get(MriJob, from_job[0])
            if job is not None:
                job.added_findings, job.updated_at = from_job[1], _now()
        session.flush()
        record_in(session, audit)
        return _record(session, row)


def delete_case(engine: Engine, case_id: int, audit: dict[str, Any] | None = None,
                version: int | Collection[int] | None = None) -> bool:
    """Delete a case with its visits and assessments; False when there is none.

    ``version``: delete only if the case is still at it (else :class:`StaleVersion`, nothing deleted).
    """
    with Session(engine) as session, session.begin():
        row = _claim(session, case_id, version)
        if row is None:
            return False
        record_in(session, audit)
        for table in (StoredVisit, StoredAssessment):
            for child in session.scalars(select(table).where(table.case_id == case_id)):
                session.delete(child)
        session.delete(row)
        return True


def add_visit(engine: Engine, case_id: int, visit: dict[str, Any], user: str,
              audit: dict[str, Any] | None = None, version: int | None = None) -> CaseRecord | None:
    """Add a visit (``version``: only if the case is still at it, else :class:`StaleVersion`)."""
    with Session(engine, expire_on_commit=False) as session, session.begin():
        row = _claim(session, case_id, version)
        if row is None:
            return None
        session.add(StoredVisit(case_id=case_id, document=visit, created_at=_now(), created_by=user))
        session.flush()
        record_in(session, audit)
        return _record(session, row)


def list_cases(engine: Engine, search: str | None, limit: int, offset: int) -> tuple[int, list[CaseRecord]]:
    """Cases whose label contains ``search`` (case-insensitive), newest first, and how many match."""
    query = select(StoredCase)
    if search:
        escaped = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(func.lower(StoredCase.label).like(f"%{escaped.lower()}%", escape="\\"))
    with Session(engine) as session:
        total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = session.scalars(query.order_by(StoredCase.id.desc()).limit(limit).offset(offset))
        return total, [_record(session, row) for row in rows]


def store_assessment(engine: Engine, case: CaseRecord, assessed_on: dt.date, document: dict[str, Any],
                     hipdx_version: str, digest: str, user: str, audit: dict[str, Any] | None = None) -> int:
    """Keep an assessment of ``case``; ``audit``'s object is its number (``Case/<id>/assessments/<n>``)."""
    with Session(engine) as session, session.begin():
        row = StoredAssessment(case_id=case.id, case_version=case.version, assessed_on=assessed_on.isoformat(),
                               document=document, hipdx_version=hipdx_version, knowledge_base_digest=digest,
                               created_at=_now(), created_by=user)
        session.add(row)
        session.flush()
        record_in(session, named(audit, f"Case/{case.id}/assessments/{row.id}", row.id))
        return row.id


def list_assessments(engine: Engine, case_id: int) -> list[dict[str, Any]]:
    with Session(engine) as session:
        rows = session.scalars(select(StoredAssessment).where(StoredAssessment.case_id == case_id)
                               .order_by(StoredAssessment.id.desc()))
        return [{"id": r.id, "case_version": r.case_version, "assessed_on": r.assessed_on,
                 "created_at": _utc(r.created_at).isoformat(), "created_by": r.created_by,
                 "provenance": {"hipdx_version": r.hipdx_version, "knowledge_base_digest": r.knowledge_base_digest},
                 "assessment": r.document} for r in rows]


def change_visit(engine: Engine, case_id: int, index: int, visit: dict[str, Any] | None, version: int,
                 audit: dict[str, Any] | None = None) -> CaseRecord | None:
    """Replace (``visit`` given) or delete (None) visit ``index`` (0-based) of the case's full
    visit list (:meth:`CaseRecord.full_case`: the visits it was created with, then those added),
    with its access record ``audit`` in the same transaction.

    Returns the case as written, or None when there is no such case or visit.

    Raises
    ------
    StaleVersion
        The case is no longer at ``version``: the index may name another visit now.
    """
    with Session(engine, expire_on_commit=False) as session, session.begin():
        if index < 0:
            return None
        row = _claim(session, case_id, version)
        if row is None:
            return None
        own = list(row.document.get("visits") or [])
        if index < len(own):
            if visit is None:
                del own[index]
            else:
                own[index] = visit
            document = dict(row.document)
            if own:
                document["visits"] = own
            else:
                document.pop("visits", None)
            row.document = document
        else:
            stored = list(session.scalars(select(StoredVisit).where(StoredVisit.case_id == case_id).order_by(StoredVisit.id)))
            if index - len(own) >= len(stored):
                session.rollback()  # no such visit: the version taken is given back
                return None
            target = stored[index - len(own)]
            if visit is None:
                session.delete(target)
            else:
                target.document = visit
        session.flush()
        record_in(session, audit)
        return _record(session, row)


def create_job(engine: Engine, job_id: str, files: int, user: str, audit: dict[str, Any] | None = None,
               case_id: int | None = None) -> None:
    """A queued MRI job, with its access record and (uploaded from a case) its case, in one transaction."""
    now = _now()
    with Session(engine) as session, session.begin():
        session.add(MriJob(id=job_id, state="queued", progress=0.0, stage="received", files=files, case_id=case_id,
                           created_by=user, created_at=now, updated_at=now, heartbeat_at=now))
        session.flush()
        record_in(session, audit)


def update_job(engine: Engine, job_id: str, **fields: Any) -> None:
    with Session(engine) as session, session.begin():
        row = session.get(MriJob, job_id)
        if row is not None:
            for key, value in fields.items():
                setattr(row, key, value)
            row.updated_at = _now()


#: a queued or running job whose heartbeat is older than this has lost its worker: ten missed beats
#: of hipdx.service.api.jobwatch (every 30 s; a beat is one small UPDATE, never queued behind the analysis)
STALE_JOB_AFTER = dt.timedelta(minutes=5)
#: what a user reads on a job whose worker died (:func:`fail_stale_jobs`)
STALE_JOB_ERROR = ("the analysis stopped: the server process running it ended (a restart, a crash or lack of "
                   "memory) before it finished. Nothing was kept of it; submit the study again.")


def beat_jobs(engine: Engine, job_ids: list[str]) -> None:
    """The worker holding these jobs (queued or running) is alive: their heartbeat is now."""
    with Session(engine) as session, session.begin():
        session.execute(update(MriJob).where(MriJob.id.in_(job_ids), MriJob.state.in_(("queued", "running")))
                        .values(heartbeat_at=_now()))


def fail_stale_jobs(engine: Engine, older_than: dt.timedelta, job_id: str | None = None) -> int:
    """Fail the queued or running jobs whose heartbeat is older than ``older_than`` (their worker
    died: nothing else stops the heartbeat); ``job_id``: that job only. Returns how many."""
    now = _now()
    stale = MriJob.state.in_(("queued", "running")) & or_(
        MriJob.heartbeat_at < now - older_than, MriJob.heartbeat_at.is_(None) & (MriJob.updated_at < now - older_than))
    if job_id is not None:
        stale = stale & (MriJob.id == job_id)
    with Session(engine) as session, session.begin():
        result = session.execute(update(MriJob).where(stale).values(
            state="failed", stage="failed", error=STALE_JOB_ERROR, updated_at=now))
        return result.rowcount or 0


def get_job(engine: Engine, job_id: str) -> dict[str, Any] | None:
    """The job, failed first if its worker died (:func:`fail_stale_jobs`), or None."""
    fail_stale_jobs(engine, STALE_JOB_AFTER, job_id)
    with Session(engine) as session:
        row = session.get(MriJob, job_id)
        if row is None:
            return None
        return _job(row)


def _job(row: MriJob) -> dict[str, Any]:
    return {"id": row.id, "state": row.state, "progress": row.progress, "stage": row.stage, "files": row.files,
            "created_by": row.created_by, "created_at": _utc(row.created_at).isoformat(),
            "updated_at": _utc(row.updated_at).isoformat(), "result": row.result, "error": row.error,
            "case_id": None if row.case_id is None else str(row.case_id), "added_findings": row.added_findings}


def jobs_of_case(engine: Engine, case_id: int) -> list[dict[str, Any]]:
    """The MRI jobs uploaded from a case, newest first (those whose worker died failed first)."""
    fail_stale_jobs(engine, STALE_JOB_AFTER)
    with Session(engine) as session:
        rows = session.scalars(select(MriJob).where(MriJob.case_id == case_id).order_by(MriJob.created_at.desc()))
        return [_job(row) for row in rows]


def record_access(engine: Engine, event: dict[str, Any]) -> None:
    """One access to patient data (see :class:`hipdx.store.tables.AccessEvent`) in a transaction of
    its own: a read, or a change refused (nothing of it written). Raises :class:`AuditRefused`."""
    with Session(engine) as session, session.begin():
        record_in(session, event)


class AuditRefused(DatabaseError):
    """The database refused the access record of a request (a full disk, a trigger, a lost
    connection): a change was rolled back with it, a read is not answered (503, retry later)."""


def named(audit: dict[str, Any] | None, default: str, number: object) -> dict[str, Any] | None:
    """``audit`` naming the object a write has just numbered: the caller's own name for it when its
    ``what`` holds ``{id}`` (the web pages' ``case {id}``), else ``default`` (the API's ``Case/12``)."""
    if audit is None:
        return None
    given = audit.get("what") or ""
    return audit | {"what": (given.replace("{id}", str(number)) if "{id}" in given else default)[:100]}


def record_in(session: Session, event: dict[str, Any] | None) -> None:
    """Write the access record ``event`` (the fields of :class:`~hipdx.store.tables.AccessEvent`;
    the time now and status 200 unless given) in ``session``'s transaction, now, so that a refusal is met
    before the change it records is committed; nothing when ``event`` is None.

    Raises
    ------
    AuditRefused
        The database refused the record: the caller's transaction rolls back as it propagates.
        The driver's message is not repeated (it may quote the statement's values); it is the
        exception's ``__cause__``.
    """
    if event is None:
        return
    session.add(AccessEvent(**({"recorded_at": _now(), "status_code": 200} | event)))
    try:
        session.flush()
    except SQLAlchemyError as exc:
        raise AuditRefused("the access audit could not record this request, so it was not carried out (nothing "
                           "was changed or shown): try again shortly; if it lasts, the administrator should check "
                           "the database") from exc


def trail_read(since: dt.datetime | None, until: dt.datetime | None, events: int, more: bool = False) -> str:
    """The object of one read of the audit trail, for its access record: the period read (UTC; from the
    first event, up to the read when open) and how many events it returned (the API: one page)."""
    start = f"{since.astimezone(dt.timezone.utc):%Y-%m-%dT%H:%M:%SZ}" if since is not None else "first event"
    end = f"{until.astimezone(dt.timezone.utc):%Y-%m-%dT%H:%M:%SZ}" if until is not None else "now"
    return f"AuditEvent: {start} to {end}, {events} events{', more follow' if more else ''}"[:100]


def access_events(engine: Engine, since: dt.datetime | None = None, limit: int = 1000) -> list[AccessEvent]:
    """The newest ``limit`` access events (a look at recent activity; an export reads :mod:`hipdx.store.trail`, uncapped)."""
    query = select(AccessEvent)
    if since is not None:
        query = query.where(AccessEvent.recorded_at >= since)
    with Session(engine, expire_on_commit=False) as session:
        return list(session.scalars(query.order_by(AccessEvent.id.desc()).limit(limit)))

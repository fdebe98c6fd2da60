"""MRI jobs whose worker died do not stay "running": heartbeats and the rule that fails the stale.

A worker process beats for the jobs it holds (queued in its executor or running) every
:data:`HEARTBEAT_INTERVAL`; the beat is the job's ``heartbeat_at`` in the database. A queued or
running job whose heartbeat is older than :data:`STALE_AFTER` has lost its worker (a restart, a
crash, the out-of-memory killer: nothing else stops the beat, which runs beside the analysis)
and is failed with a reason the user can read (:data:`hipdx.store.records.STALE_JOB_ERROR`).
The rule is applied when a service starts (:func:`hipdx.service.factory.build_app`), whenever a
job is read (:func:`hipdx.store.records.get_job`, for the API and the web pages alike), and by every
beating worker for all jobs, so it holds with several workers: a
worker restarting does not fail the jobs another live worker is running.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from hipdx.store import records

log = logging.getLogger("hipdx.service.api")
HEARTBEAT_INTERVAL = dt.timedelta(seconds=30)
STALE_AFTER = records.STALE_JOB_AFTER  # five minutes: ten missed beats


class JobWatch:
    """The jobs this process holds, and the thread that beats for them (alive only while it holds one)."""

    def __init__(self, interval: dt.timedelta = HEARTBEAT_INTERVAL, stale_after: dt.timedelta = STALE_AFTER) -> None:
        self.interval, self.stale_after = interval, stale_after
        self._held: set[str] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def hold(self, engine: Engine, job_id: str) -> None:
        """This process has the job (queued or running): beat for it until :meth:`release`."""
        with self._lock:
            self._held.add(job_id)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._beat, args=(engine,), name="hipdx-mri-heartbeat",
                                                daemon=True)
                self._thread.start()

    def release(self, job_id: str) -> None:
        with self._lock:
            self._held.discard(job_id)

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait until the beating thread has ended (it ends one interval after the last release)."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout_s)
        return thread is None or not thread.is_alive()

    def held(self) -> list[str]:
        with self._lock:
            return sorted(self._held)

    def _beat(self, engine: Engine) -> None:
        while True:
            time.sleep(self.interval.total_seconds())
            held = self.held()
            if not held:
                with self._lock:
                    if not self._held:
                        self._thread = None
                        return
                continue
            try:
                records.beat_jobs(engine, held)
                failed = records.fail_stale_jobs(engine, self.stale_after)
            except SQLAlchemyError as exc:  # the database is away for a moment: the next beat tries again
                log.warning("MRI job heartbeat failed: %s", type(exc).__name__)
                continue
            if failed:
                log.warning("%d MRI job(s) failed: their worker stopped beating", failed)


def fail_stale(engine: Engine, stale_after: dt.timedelta = STALE_AFTER, job_id: str | None = None) -> int:
    """Apply the rule now (start-up, a job read); log how many jobs it failed."""
    failed = records.fail_stale_jobs(engine, stale_after, job_id)
    if failed:
        log.warning("%d MRI job(s) failed: their worker stopped beating", failed)
    return failed

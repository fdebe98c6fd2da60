"""An MRI job whose worker process dies does not stay "running": a real worker process beating for
its job is killed (SIGKILL) and the job is failed once its heartbeat is stale, while a job held by
a live worker is not; a stale row is failed when it is read and when a service starts. SQLite and
PostgreSQL."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session

from hipdx.service.api.jobwatch import JobWatch
from hipdx.service.factory import build_app, prepare_database
from hipdx.service.settings import load_settings
from hipdx.store import connect, migrate, records
from hipdx.store.tables import MriJob

from api_support import DATABASES, Api, api, database  # noqa: F401  (fixtures)

ROOT = Path(__file__).resolve().parent.parent
WORKER = textwrap.dedent("""
    import datetime as dt, sys, time
    from hipdx.service.api.jobwatch import JobWatch
    from hipdx.store import connect, records
    url, job_id = sys.argv[1], sys.argv[2]
    engine = connect(url)
    records.create_job(engine, job_id, 3, "clinician")
    records.update_job(engine, job_id, state="running", progress=0.3, stage="analysing (femoral heads, edema, bands)")
    JobWatch(interval=dt.timedelta(seconds=0.2)).hold(engine, job_id)
    print("running", flush=True)
    time.sleep(120)  # "the analysis": the process is killed long before
""")


def _heartbeat(url: str, job_id: str) -> dt.datetime | None:
    engine = connect(url)
    try:
        with Session(engine) as session:
            row = session.get(MriJob, job_id)
            return None if row is None else row.heartbeat_at
    finally:
        engine.dispose()


@pytest.fixture(params=DATABASES)
def migrated(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    for url in database(request.param, tmp_path):
        engine = connect(url)
        migrate(engine)
        yield url, engine
        engine.dispose()


@pytest.mark.slow  # a worker process started and killed: a few seconds of imports and waiting
def test_a_killed_worker_s_job_is_failed_and_a_live_one_is_not(migrated) -> None:  # type: ignore[no-untyped-def]
    url, engine = migrated
    dead, alive = str(uuid.uuid4()), str(uuid.uuid4())
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    worker = subprocess.Popen([sys.executable, "-c", WORKER, url, dead], stdout=subprocess.PIPE, env=env, text=True)
    try:
        assert worker.stdout is not None and worker.stdout.readline().strip() == "running"
        first = _heartbeat(url, dead)
        deadline = time.monotonic() + 20
        while _heartbeat(url, dead) == first and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _heartbeat(url, dead) != first  # the worker beats
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
        worker.stdout.close()  # type: ignore[union-attr]
    # this process is a live worker with a job of its own
    records.create_job(engine, alive, 3, "clinician")
    records.update_job(engine, alive, state="running")
    watch = JobWatch(interval=dt.timedelta(seconds=0.2))
    watch.hold(engine, alive)
    try:
        stale_after = dt.timedelta(seconds=2)
        assert records.fail_stale_jobs(engine, stale_after) == 0  # just killed: its last beat is recent
        assert records.get_job(engine, dead)["state"] == "running"
        time.sleep(2.5)
        assert records.fail_stale_jobs(engine, stale_after) == 1
        failed = records.get_job(engine, dead)
        assert failed["state"] == "failed" and failed["error"] == records.STALE_JOB_ERROR
        assert "submit the study again" in failed["error"]
        assert records.get_job(engine, alive)["state"] == "running"  # its worker beats: not failed
    finally:
        watch.release(alive)
        assert watch.wait_idle(5)  # no beat left in flight when the database goes


def _stale(engine, job_id: str, state: str = "running", age: dt.timedelta = dt.timedelta(hours=1)) -> None:  # type: ignore[no-untyped-def]
    records.create_job(engine, job_id, 3, "clinician")
    with Session(engine) as session, session.begin():
        old = dt.datetime.now(dt.timezone.utc) - age
        session.execute(update(MriJob).where(MriJob.id == job_id).values(state=state, heartbeat_at=old, updated_at=old))


def test_a_stale_job_is_failed_when_read(api: Api) -> None:
    stale, fresh = str(uuid.uuid4()), str(uuid.uuid4())
    _stale(api.engine, stale)
    records.create_job(api.engine, fresh, 3, "clinician")  # queued a moment ago by a live worker
    headers = api.sign_in()
    answer = api.client.get(f"/api/v1/mri/jobs/{stale}", headers=headers).json()
    assert answer["state"] == "failed" and answer["error"] == records.STALE_JOB_ERROR and answer["stage"] == "failed"
    assert api.client.get(f"/api/v1/mri/jobs/{fresh}", headers=headers).json()["state"] == "queued"


def test_stale_jobs_are_failed_when_the_service_starts(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path / "data", insecure_no_auth=True)
    prepare_database(settings)
    engine = connect(settings.effective_database_url())
    stale, queued, recent = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    _stale(engine, stale)
    _stale(engine, queued, state="queued")
    _stale(engine, recent, age=dt.timedelta(seconds=30))  # another live worker's job: beat 30 s ago
    build_app(settings)
    assert [records.get_job(engine, j)["state"] for j in (stale, queued, recent)] == ["failed", "failed", "running"]
    engine.dispose()

"""`hipdx run` (what `make run` starts): the example cases stored once, a demo sign-in printed,
the whole service handed to uvicorn on 127.0.0.1 (the server itself is not started here)."""

from __future__ import annotations

import datetime as dt
import re
import stat
from pathlib import Path
from typing import Any

import pytest

from hipdx.store import connect, records
from hipdx.store.users import sign_in

from conftest import EXAMPLES, CliRunner

pytestmark = pytest.mark.slow  # `hipdx run` as a real process: in `make test`, not in `make test-fast`


def test_run_stores_the_examples_once_and_prints_a_working_demo_sign_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    from hipdx.cli import app

    for name in ("HIPDX_DATA_DIR", "HIPDX_INSECURE_NO_AUTH", "HIPDX_SESSION_COOKIE_SECURE"):
        monkeypatch.setenv(name, "")  # restored after the test: run sets them for its workers
    for name in ("HIPDX_DATABASE_URL", "HIPDX_CONFIG", "HIPDX_CDS_ISSUERS"):
        monkeypatch.delenv(name, raising=False)
    started: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda target, **options: started.append({"target": target, **options}))
    data = tmp_path / "run"
    arguments = ["run", "--port", "8123", "--data-dir", str(data), "--examples", str(EXAMPLES)]
    first = CliRunner().invoke(app, arguments, catch_exceptions=False)
    assert first.exit_code == 0, first.output
    assert "http://127.0.0.1:8123" in first.output
    password = re.search(r"password:\s+(\S+)", first.output).group(1)
    assert started[0]["host"] == "127.0.0.1" and started[0]["port"] == 8123
    assert started[0]["target"] == "hipdx.service.factory:app_from_environment"
    assert stat.S_IMODE((data / "demo-password").stat().st_mode) == 0o600
    engine = connect(f"sqlite:///{data / 'hipdx.db'}")
    try:
        examples = sorted(p.stem for p in EXAMPLES.glob("*.json"))
        assert sorted(r.label for r in records.list_cases(engine, None, 100, 0)[1]) == examples
        assert sign_in(engine, "demo", password, "session", dt.timedelta(minutes=5)) is not None
        second = CliRunner().invoke(app, arguments, catch_exceptions=False)
        assert second.exit_code == 0 and f"password:   {password}" in second.output
        assert records.list_cases(engine, None, 100, 0)[0] == len(examples)  # not stored twice
    finally:
        engine.dispose()

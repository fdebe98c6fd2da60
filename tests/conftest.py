"""Shared fixtures: the bundled knowledge base, a fixed assessment date, and a case runner."""

from __future__ import annotations

import datetime as dt
import contextlib
import functools
import os
import threading
from http.server import ThreadingHTTPServer
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import typer.main
import typer.testing
from hypothesis import settings
from typer.testing import Result

import hipdx
import hipdx.store.users
from hipdx.knowledge import KnowledgeBase, load_knowledge_base

# Property tests are deterministic in every run (CI included): the same examples each time,
# no example database carried between runs.
settings.register_profile("hipdx", derandomize=True, database=None, deadline=None)
# `make fuzz`: the fuzz targets (tests/test_fuzz.py) with random examples, many of them.
settings.register_profile(
    "fuzz", database=None, deadline=None, max_examples=int(os.environ.get("HIPDX_FUZZ_EXAMPLES", "20000"))
)
settings.load_profile(os.environ.get("HIPDX_HYPOTHESIS_PROFILE", "hipdx"))
# The fast suite (a selection without the `slow` tests, as `make test-fast` runs it) draws a
# quarter of each property test's examples (at least 10): the same properties, explored less in
# the loop run after every change; `make test` draws them all.
settings.register_profile("hipdx-fast", parent=settings.get_profile("hipdx"), max_examples=25)
FAST_EXAMPLE_SHARE = 4
_fast_suite = [False]


def pytest_configure(config: pytest.Config) -> None:
    markexpr = config.getoption("markexpr", "") or ""
    _fast_suite[0] = "not slow" in markexpr and "HIPDX_HYPOTHESIS_PROFILE" not in os.environ
    if _fast_suite[0]:
        settings.load_profile("hipdx-fast")


def examples(n: int) -> int:
    """A property test's ``max_examples``: ``n``, or a quarter of it (at least 10) in the fast suite."""
    return max(10, n // FAST_EXAMPLE_SHARE) if _fast_suite[0] else n

#: Every assessment in the tests is made on this date, so nothing depends on the clock.
TODAY = dt.date(2026, 11, 25)
ROOT = Path(__file__).resolve().parent.parent

#: A man with every safety fact of the plan known and normal, so that only the fact a test
#: changes moves an option.
SAFE_MAN: dict[str, Any] = {
    "age_years": 45,
    "sex": "male",
    "weight_kg": 80,
    "systolic_bp_mmhg": 125,
    "labs": {
        "creatinine": {"value": 1.0, "unit": "mg/dL"},
        "egfr": {"value": 90, "unit": "mL/min/1.73m2"},
        "calcium": {"value": 2.4, "unit": "mmol/L"},
        "vitamin_d": {"value": 32, "unit": "ng/mL"},
        "alp": {"value": 80, "unit": "U/L"},
    },
    "risk_factors": {"cancer_history": "absent"},
    "comorbidities": {name: "absent" for name in hipdx.Case.model_fields["comorbidities"].annotation.model_fields},
}
EXAMPLES = ROOT / "examples"


@pytest.fixture(scope="session")
def kb() -> KnowledgeBase:
    return load_knowledge_base()


@pytest.fixture(scope="session")
def today() -> dt.date:
    return TODAY


@pytest.fixture(scope="session")
def run(kb: KnowledgeBase) -> Callable[[dict[str, Any]], hipdx.Assessment]:
    """Validate a case given as a mapping and assess it against the bundled base on TODAY."""

    def _run(raw: dict[str, Any]) -> hipdx.Assessment:
        return hipdx.assess(hipdx.parse_case(raw), kb, TODAY)

    return _run


#: Named phantoms that several test modules use (``PhantomSpec`` fields): written once per session.
PHANTOM_SPECS: dict[str, dict[str, Any]] = {
    #: 256 x 256 x 32: femoral edema and a band on the left.
    "small": dict(seed=2, edema_ml=25.0, band_mm=5.0, rows=256, cols=256, pixel_mm=1.35, slices=32),
    #: The same with acetabular edema and an effusion on the left.
    "small-joint": dict(seed=2, edema_ml=25.0, band_mm=5.0, rows=256, cols=256, pixel_mm=1.35, slices=32,
                        acetabular_edema_ml=5.0, effusion_ml=10.0),
    #: No edema, band, acetabular edema or effusion.
    "small-healthy": dict(seed=3, edema_ml=0.0, band_mm=0.0, rows=256, cols=256, pixel_mm=1.35, slices=32),
    #: Femoral edema and a band, no acetabular edema or effusion (default 384 x 384 x 40 grid).
    "femoral-only": dict(seed=13, side="left", edema_ml=30, band_mm=4, snr=20, bias=0.2),
    #: The default grid, 20 mL of edema and a 4 mm band on the left.
    "default-20ml-4mm": dict(seed=3, edema_ml=20.0, band_mm=4.0),
}


class Phantoms:
    """Phantoms written, read and analysed at most once per test session.

    Ask by name (:data:`PHANTOM_SPECS`) or by the ``PhantomSpec`` fields: the same spec asked
    twice, under any name and from any module, is the same folder and the same analysis. The
    folders, studies and analyses are shared: a test that changes one copies it first.
    """

    def __init__(self, factory: pytest.TempPathFactory) -> None:
        self._factory = factory
        self._written: dict[Any, tuple[Path, Any]] = {}
        self._analysed: dict[Any, tuple[Any, Any]] = {}

    @staticmethod
    def spec(phantom: str | dict[str, Any]) -> Any:
        from hipdx.imaging.phantom import PhantomSpec

        return PhantomSpec(**(PHANTOM_SPECS[phantom] if isinstance(phantom, str) else phantom))

    def write(self, phantom: str | dict[str, Any]) -> tuple[Path, Any]:
        """(folder, truth) of the phantom, written on first use."""
        from hipdx.imaging.phantom import write_phantom

        spec = self.spec(phantom)
        if spec not in self._written:
            folder = self._factory.mktemp(phantom if isinstance(phantom, str) else f"phantom-seed{spec.seed}")
            self._written[spec] = (folder, write_phantom(folder, spec))
        return self._written[spec]

    def folder(self, phantom: str | dict[str, Any]) -> Path:
        return self.write(phantom)[0]

    def analysed(self, phantom: str | dict[str, Any]) -> tuple[Any, Any]:
        """(study, MriAnalysis) of the phantom: ``read_study`` and ``analyze_study`` on first use."""
        from hipdx.imaging.analyze import analyze_study
        from hipdx.imaging.io import read_study

        spec = self.spec(phantom)
        if spec not in self._analysed:
            study = read_study(self.folder(phantom))
            self._analysed[spec] = (study, analyze_study(list(study.volumes)))
        return self._analysed[spec]

    def analyse(self, phantoms: dict[str, dict[str, Any]]) -> dict[str, tuple[Any, Any]]:
        """name -> (truth, MriAnalysis) of each phantom."""
        return {name: (self.write(spec)[1], self.analysed(spec)[1]) for name, spec in phantoms.items()}


# -- the command line: typer's CliRunner, the app turned into its click command once ---------------
# typer's CliRunner builds the click command of the app on every invoke (about 15 ms for hipdx's);
# the suite invokes the command line about 140 times. The command is kept per app; each invoke still
# parses its arguments and runs its own click context.

_command_of = functools.cache(typer.main.get_command)


class CliRunner(typer.testing.CliRunner):
    """typer's test runner, with the click command of each app built once per session."""

    def invoke(self, app: typer.Typer, *args: Any, **kwargs: Any) -> Result:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(typer.testing, "_get_command", _command_of)
            return super().invoke(app, *args, **kwargs)


# -- passwords: a cheap argon2id in the tests, the real cost pinned --------------------------------
# An argon2id hash at the production cost (64 MiB, t=3, p=4) costs about 0.17 s of CPU; the suite
# hashes and verifies about 50 passwords. The tests hash with the same algorithm at its least cost
# (a hash records its parameters, so verification is unchanged); test_api_users pins that the
# service itself hashes at the production cost (PRODUCTION_PASSWORD_HASHER, its own hasher).

#: the service's own hasher (hipdx.store.users), kept before the tests swap in the cheap one
PRODUCTION_PASSWORD_HASHER = hipdx.store.users._HASHER


@pytest.fixture(scope="session", autouse=True)
def cheap_password_hashes() -> Iterator[None]:
    """argon2id at its least cost (t=1, 64 KiB, p=1) for every password the tests hash, the whole session."""
    from argon2 import PasswordHasher

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("hipdx.store.users._HASHER", PasswordHasher(time_cost=1, memory_cost=64, parallelism=1))
        yield


@pytest.fixture(scope="session")
def phantoms(tmp_path_factory: pytest.TempPathFactory) -> Phantoms:
    """The session's phantoms (:class:`Phantoms`)."""
    return Phantoms(tmp_path_factory)


def healthy_side(truth: Any) -> str:
    """The side of a phantom without the lesion."""
    return "right" if truth.side == "left" else "left"



# -- real data in ../shared beside the checkout (issue 13, the test loop) ----------------------------
# One policy for every test that reads ../shared (real MRI, the FHIR examples, the development set):
# a missing file fails in CI and in a checkout that has ../shared beside it (the data are incomplete
# or a path is wrong); elsewhere the test is skipped with the path it looked for. Such a test is
# marked `real_data` (pyproject.toml), which `make test-fast` leaves out; shared_data() checks it.

SHARED = ROOT.parent / "shared"


def in_ci() -> bool:
    """True when the CI environment variable says so (.ci/run sets CI=true)."""
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


_running: list[pytest.Item] = []


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    _running[:] = [item]


def pytest_runtest_teardown(item: pytest.Item) -> None:
    _running.clear()


def shared_data(path: str | Path) -> Path:
    """A file or folder of ../shared (given relative to it, or as a path inside it), checked to exist.

    Missing: a failure in CI or beside ../shared, otherwise a skip naming the path. Called from a
    test or fixture of a test marked ``real_data``; an unmarked caller fails, so `make test-fast`
    never reads ../shared.
    """
    if _running and _running[0].get_closest_marker("real_data") is None:
        pytest.fail(f"{_running[0].nodeid} reads ../shared but is not marked real_data", pytrace=False)
    full = SHARED / path
    if full.exists():
        return full
    if in_ci():
        pytest.fail(f"real test data missing in CI: {full}", pytrace=False)
    if SHARED.is_dir():
        pytest.fail(f"real test data missing: {full} (../shared is beside the checkout, but not this file)", pytrace=False)
    pytest.skip(f"real test data not found: {full} (no ../shared beside the checkout)")


def shared_files(folder: str, pattern: str) -> list[Path]:
    """The files of a ../shared folder matching a glob, sorted, to parametrise a test at collection.

    None found: the one pattern path, on which the test's shared_data() call fails or skips.
    """
    return sorted((SHARED / folder).glob(pattern)) or [SHARED / folder / pattern]


class LoopbackHTTPServer(ThreadingHTTPServer):
    """The tests' HTTP servers on loopback (a JWK Set, a FHIR server): a client that gives up first
    (a timeout the test provokes) is no error of the server's. The stock server prints a
    BrokenPipe/ConnectionReset traceback from its request thread when it answers such a client, up
    to seconds later, on whatever ``sys.stderr`` is then: inside a later test's CliRunner it was
    read as that command's output and failed ``assert "Traceback" not in result.output``."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)

    @classmethod
    @contextlib.contextmanager
    def serving(cls, handler: Any) -> Iterator[str]:
        """``handler`` served on a loopback port in a thread, for the ``with`` block: its base URL."""
        server = cls(("127.0.0.1", 0), handler)
        # polled every 10 ms for the shutdown (the default half second is most of a test's time)
        threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True).start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}"
        finally:
            server.shutdown()
            server.server_close()


def send_json(handler: Any, status: int, payload: bytes, content_type: str = "application/fhir+json") -> None:
    """A test server's answer: ``payload`` with its status, type and length."""
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(payload)))
    handler.end_headers()
    handler.wfile.write(payload)

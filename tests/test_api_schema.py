"""Requests generated from the OpenAPI description (schemathesis), valid and invalid, signed in:
no answer is a server error. A bounded run here (HIPDX_API_FUZZ_EXAMPLES per operation, 12 by
default: a few hundred requests); ``make fuzz-api`` adds schemathesis' coverage phase and more
examples, more than 10,000 requests, on SQLite and on PostgreSQL (docs/service.md)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode

import hipdx

from api_support import Api, build_api, database

pytestmark = pytest.mark.slow  # hundreds of generated requests (schemathesis): in `make test`, not in `make test-fast`

EXAMPLES = int(os.environ.get("HIPDX_API_FUZZ_EXAMPLES", "12"))
#: the coverage phase (every boundary and type the schema defines, about 8,000 requests) runs in `make fuzz-api`
PHASES = os.environ.get("HIPDX_API_FUZZ_PHASES", "examples,fuzzing").split(",")
KIND = os.environ.get("HIPDX_API_FUZZ_DATABASE", "sqlite")
SENT = {"requests": 0, "server_errors": 0}


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, kb: hipdx.KnowledgeBase) -> Iterator[Api]:
    folder: Path = tmp_path_factory.mktemp("schemathesis")
    for url in database(KIND, folder):
        built = build_api(url, kb, folder)
        yield built
        built.context.jobs.shutdown(wait=True)
        built.engine.dispose()
    print(f"\nschemathesis: {SENT['requests']} requests, {SENT['server_errors']} server errors")


@pytest.fixture(scope="module")
def api_schema(service: Api) -> schemathesis.BaseSchema:
    schema = schemathesis.openapi.from_asgi("/openapi.json", service.client.app)
    schema.config.phases.update(phases=PHASES)
    schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
                                    max_examples=EXAMPLES, deterministic=True)
    return schema


@pytest.fixture(scope="module")
def bearer(service: Api) -> dict[str, str]:
    return service.sign_in("admin")


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
def test_no_generated_request_is_a_server_error(case: schemathesis.Case, bearer: dict[str, str]) -> None:
    if case.path == "/api/v1/auth/token" and case.method == "DELETE":
        return  # signing out would end the run's token
    response = case.call(headers=bearer)
    SENT["requests"] += 1
    if response.status_code >= 500:
        SENT["server_errors"] += 1
    case.validate_response(response, checks=[not_a_server_error])

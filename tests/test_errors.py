"""The error hierarchy: each class mapped once to an exit code and an HTTP status (STYLE.md)."""

from __future__ import annotations

import datetime as dt

import pytest
from fastapi.testclient import TestClient

from hipdx.errors import DatabaseError, HipdxError, ImagingError, InputError, IntegrationError, KnowledgeBaseError
from hipdx.knowledge import load_knowledge_base
from hipdx.service import ServiceConfig, create_app

#: RFC 9110: 400 a request the client got wrong (malformed, invalid, implausible), 422 a
#: well-formed request whose content (a FHIR chart, a study) cannot be processed, 500 ours, 503 a
#: database the service cannot use (unavailable, not migrated).
STATUS = {HipdxError: 500, InputError: 400, KnowledgeBaseError: 500, ImagingError: 422, IntegrationError: 422,
          DatabaseError: 503}
EXIT = {HipdxError: 1, InputError: 2, KnowledgeBaseError: 3, ImagingError: 4, IntegrationError: 5, DatabaseError: 6}


def test_each_error_class_has_one_status_and_one_exit_code() -> None:
    assert {cls: cls.http_status for cls in STATUS} == STATUS
    assert {cls: cls.exit_code for cls in EXIT} == EXIT


@pytest.mark.parametrize("cls", list(STATUS))
def test_the_service_answers_an_error_with_the_status_of_its_class(cls: type[HipdxError]) -> None:
    """The service takes the status from the class: no second mapping in the web layer."""
    app = create_app(ServiceConfig(issuers=None, insecure_no_auth=True, today=lambda: dt.date(2026, 1, 1)), load_knowledge_base())

    @app.get("/cds-services/raises")
    def raises() -> None:
        raise cls("what went wrong")

    response = TestClient(app, raise_server_exceptions=False).get("/cds-services/raises")
    assert response.status_code == cls.http_status
    assert response.json()["resourceType"] == "OperationOutcome"

"""The web service wing: CDS Hooks 2.0 (discovery, patient-view), JWT checking. Built on the FHIR wing and the core."""

from hipdx.service.app import ServiceConfig, create_app
from hipdx.service.auth import IssuerList

__all__ = ["IssuerList", "ServiceConfig", "create_app"]

"""The clinician's web pages: a wing over the core, mounted into the service's FastAPI app.

The core never imports this package. :func:`web_router` gives the pages for one knowledge
base; :class:`CaseLibrary` holds the cases they list.
"""

from hipdx.web.library import CaseLibrary
from hipdx.web.pages import web_router

__all__ = ["CaseLibrary", "web_router"]

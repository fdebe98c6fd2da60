"""The SMART launches under way (:mod:`hipdx.web.smart`): in the service's database when it has
one (:mod:`hipdx.store.launches`: any worker finishes a launch another started), else in this
process's memory (the pages without a database run as one process). Each launch is kept
:data:`FLOW_SECONDS` under its key and read once."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

#: How long a launch is kept between hipdx's redirect and the callback, then between the
#: callback and the case page (seconds): ten minutes.
FLOW_SECONDS = 600
#: Launches kept at most at once (a flood of launch requests is refused, not stored).
MAX_FLOWS = 1000


@dataclass
class Flow:
    """One launch: what the callback and the case page need (never the access token)."""

    iss: str  # the allowed server's iss (its configuration is looked up again when the flow is read)
    state: str
    verifier: str
    browser: str  # the value of the flow cookie
    user: str | None  # the hipdx session's token hash
    redirect_uri: str
    token_endpoint: str
    launch: str | None = None
    jwks_uri: str | None = None  # from the SMART configuration, to verify an id_token
    issuer: str | None = None  # the SMART configuration's issuer (the id_token's iss)
    openid: bool = False  # openid fhirUser asked for: the token response carries an id_token
    resources: list[dict[str, Any]] | None = None  # the patient's chart as read
    patient: str | None = None
    encounter: str | None = None  # the launch context's encounter (the token response's ``encounter``)
    notes: list[str] = field(default_factory=list)


class TooMany(Exception):
    """More launches under way than :data:`MAX_FLOWS`."""


class MemoryFlows:
    """Launches in this process's memory, by key; each used once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[str, tuple[float, Flow]] = {}

    def put(self, key: str, flow: Flow) -> None:
        now = time.monotonic()
        with self._lock:
            for k in [k for k, (expires, _) in self._items.items() if expires < now]:
                del self._items[k]
            if len(self._items) >= MAX_FLOWS:
                raise TooMany()
            self._items[key] = (now + FLOW_SECONDS, flow)

    def take(self, key: str) -> Flow | None:
        with self._lock:
            found = self._items.pop(key, None)
        return found[1] if found is not None and found[0] >= time.monotonic() else None


class StoredFlows:
    """Launches in the service's database (table ``smart_launch``), by key; each used once."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine

    def put(self, key: str, flow: Flow) -> None:
        from hipdx.store.launches import TooManyLaunches, put_launch

        document = {k: v for k, v in dataclasses.asdict(flow).items() if k not in ("iss", "verifier", "launch")}
        try:
            put_launch(self.engine, key, issuer=flow.iss, verifier=flow.verifier, launch=flow.launch, document=document,
                       seconds=FLOW_SECONDS, cap=MAX_FLOWS)
        except TooManyLaunches:
            raise TooMany() from None

    def take(self, key: str) -> Flow | None:
        from hipdx.store.launches import take_launch

        found = take_launch(self.engine, key[:64])
        if found is None:
            return None
        return Flow(iss=found["issuer"], verifier=found["verifier"] or "", launch=found["launch"], **found["document"])


def flows_for(engine: Any | None) -> Callable[[], MemoryFlows | StoredFlows]:
    """The store of launches: the database's when there is one."""
    return (lambda: StoredFlows(engine)) if engine is not None else MemoryFlows

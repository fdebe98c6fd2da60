"""FHIR JSON is read by hipdx's one strict reader, :func:`hipdx.jsonio.loads`.

A key given twice, NaN or Infinity, nesting deeper than its limit, an endless number or a
lone surrogate is refused there; here the refusal becomes an
:class:`~hipdx.errors.IntegrationError` (the FHIR wing's error), with the same message and
problems.
"""

from __future__ import annotations

from typing import Any

from hipdx.errors import InputError, IntegrationError
from hipdx.jsonio import loads

#: Largest FHIR file the command line reads. One patient's record: the largest Synthea
#: bundle of the test data is 4.1 MB, and a real chart with years of observations can be ten
#: times that; the case reader's 5 MB cap is for hand-written cases.
MAX_FHIR_BYTES = 64 * 1024 * 1024


def read_json(raw: str | bytes, what: str = "the FHIR input") -> Any:
    """Decode FHIR JSON strictly.

    Raises
    ------
    IntegrationError
        Whatever :func:`hipdx.jsonio.loads` refuses, with its message and problems.

    Examples
    --------
    >>> read_json('{"a": 1}')
    {'a': 1}
    >>> read_json('{"a": 1, "a": 2}')
    Traceback (most recent call last):
    ...
    hipdx.errors.IntegrationError: the FHIR input gives a key twice
      - a: given twice (1 and 2); hipdx does not choose which one holds
    """
    try:
        return loads(raw, what)
    except InputError as err:
        raise IntegrationError(err.message, err.problems) from None

"""Units of the laboratory and body measurements hipdx accepts, and their conversion.

Every measured value arrives with an explicit unit. Each quantity has one canonical
unit (the one its name carries elsewhere, e.g. ``crp_mg_per_l``) and a closed list of
accepted aliases with exact conversion factors. Anything else is rejected with the
list of accepted units; nothing is guessed.

Conversion factors
------------------
- CRP: 1 mg/dL = 10 mg/L.
- 25-OH vitamin D: 1 ng/mL = 2.496 nmol/L (molar mass 400.6 g/mol).
- Calcium: 1 mmol/L = 4.008 mg/dL (molar mass 40.08 g/mol).
- Creatinine: 1 mg/dL = 88.42 umol/L (molar mass 113.12 g/mol).
- White cells: 1 x10^9/L = 1000 /uL (= cells/mm3).
- Temperature: F = C x 9/5 + 32.
"""

from __future__ import annotations

from typing import Callable


def _scale(factor: float) -> Callable[[float], float]:
    return lambda value: value * factor


def _normalise_unit(unit: str) -> str:
    return (
        unit.strip()
        .replace("µ", "u")
        .replace("μ", "u")
        .replace("°", "deg")
        .replace("degdeg", "deg")
        .replace(" ", "")
        .replace("×", "x")
        .replace("²", "2")
        .replace("³", "3")
        .lower()
    )


class Quantity:
    """A measurable quantity: canonical unit, accepted units and a plausible range.

    The range is physiological plausibility (a value outside it is almost surely an
    entry or unit error), not a reference interval.
    """

    def __init__(
        self,
        name: str,
        canonical_unit: str,
        units: dict[str, Callable[[float], float]],
        plausible: tuple[float, float],
    ) -> None:
        self.name = name
        self.canonical_unit = canonical_unit
        self.accepted_units = tuple(units)
        self.plausible_min, self.plausible_max = plausible
        self._table = {_normalise_unit(u): f for u, f in units.items()}

    def to_canonical(self, value: float, unit: str) -> float:
        """Convert ``value`` in ``unit`` to the canonical unit.

        Raises
        ------
        ValueError
            If the unit is not accepted for this quantity.
        """
        convert = self._table.get(_normalise_unit(unit))
        if convert is None:
            raise ValueError(
                f"unit {unit!r} is not accepted for {self.name}; use one of: {', '.join(self.accepted_units)}"
            )
        return convert(value)



_same = _scale(1.0)

QUANTITIES: dict[str, Quantity] = {
    q.name: q
    for q in (
        Quantity("esr", "mm/h", {"mm/h": _same, "mm/hr": _same}, (0, 150)),
        Quantity("crp", "mg/L", {"mg/L": _same, "mg/dL": _scale(10.0)}, (0, 600)),
        Quantity(
            "wbc",
            "10^9/L",
            {
                "10^9/L": _same,
                "x10^9/L": _same,
                "G/L": _same,
                "10^3/uL": _same,
                "x10^3/uL": _same,
                "/uL": _scale(1e-3),
                "cells/uL": _scale(1e-3),
                "/mm3": _scale(1e-3),
                "cells/mm3": _scale(1e-3),
            },
            (0.1, 200),
        ),
        Quantity(
            "temperature",
            "degC",
            {"degC": _same, "C": _same, "F": lambda f: (f - 32.0) * 5.0 / 9.0, "degF": lambda f: (f - 32.0) * 5.0 / 9.0},
            (30, 44),
        ),
        Quantity("vitamin_d", "ng/mL", {"ng/mL": _same, "ug/L": _same, "nmol/L": _scale(1 / 2.496)}, (0, 250)),
        Quantity("calcium", "mmol/L", {"mmol/L": _same, "mg/dL": _scale(1 / 4.008)}, (0.5, 5.0)),
        Quantity("creatinine", "umol/L", {"umol/L": _same, "mg/dL": _scale(88.42)}, (10, 2500)),
        Quantity("egfr", "mL/min/1.73m2", {"mL/min/1.73m2": _same, "mL/min": _same}, (1, 200)),
        Quantity("alp", "U/L", {"U/L": _same, "IU/L": _same}, (5, 5000)),
        Quantity("weight", "kg", {"kg": _same, "lb": _scale(0.45359237)}, (20, 350)),
        Quantity(
            "synovial_wbc",
            "cells/uL",
            {"cells/uL": _same, "/uL": _same, "cells/mm3": _same, "/mm3": _same, "10^9/L": _scale(1000.0), "10^3/uL": _scale(1000.0)},
            (0, 500000),
        ),
    )
}

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

    def plausible_in(self, unit: str) -> tuple[float, float]:
        """The plausible range expressed in ``unit`` (every conversion is affine: a x value + b).

        Raises
        ------
        ValueError
            If the unit is not accepted for this quantity.
        """
        b = self.to_canonical(0.0, unit)
        a = self.to_canonical(1.0, unit) - b
        return (self.plausible_min - b) / a, (self.plausible_max - b) / a



_same = _scale(1.0)

# Plausible ranges, in the canonical unit (the other unit in brackets). A range holds every
# value a living patient can be assessed with (survivable extremes), and is checked so that
# a usual value given in the wrong unit falls outside it wherever the two units differ enough
# (calcium, creatinine, white cells, temperature). Where the two units are close (CRP mg/L
# vs mg/dL at a factor 10, vitamin D ng/mL vs nmol/L at 2.5) no range can catch a mix-up:
# the unit must be right. "Estimate" marks a judgement rather than a reported value.
QUANTITIES: dict[str, Quantity] = {
    q.name: q
    for q in (
        # ESR 0-150 mm/h: the Westergren column is 200 mm and values above about 150 mm/h are
        # not reported (estimate). One unit.
        Quantity("esr", "mm/h", {"mm/h": _same, "mm/hr": _same}, (0, 150)),
        # CRP 0-600 mg/L (0-60 mg/dL): the highest values, in sepsis and burns, are around
        # 500-600 mg/L (estimate).
        Quantity("crp", "mg/L", {"mg/L": _same, "mg/dL": _scale(10.0)}, (0, 600)),
        # White cells 0.1-1000 x10^9/L (100-1,000,000 /uL). Hyperleukocytosis of leukaemia is
        # > 100 x10^9/L and counts of several hundred occur (Roellig & Ehninger, Blood 2015;
        # 125:3246); 1000 is a wide estimate. Below 0.1 (100 /uL) is under the reporting
        # limit of most analysers (estimate). A usual 7 x10^9/L typed as /uL (0.007) or
        # 7000 /uL typed as 10^9/L is refused.
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
            (0.1, 1000),
        ),
        # Temperature 30-44 degC (86-111.2 degF): below 30 degC is severe hypothermia and above
        # 44 degC lethal heat stroke as a rule; rarer survivals are resuscitation cases, not a
        # hip-pain assessment (estimate). 98.6 given as degC or 37 as degF (2.8 degC) is refused.
        Quantity(
            "temperature",
            "degC",
            {"degC": _same, "C": _same, "F": lambda f: (f - 32.0) * 5.0 / 9.0, "degF": lambda f: (f - 32.0) * 5.0 / 9.0},
            (30, 44),
        ),
        # 25-OH vitamin D 0-1250 ng/mL (0-3120 nmol/L): reported intoxications reach 150-1220
        # ng/mL (Galior et al., Nutrients 2018;10:953, a review of case reports).
        Quantity("vitamin_d", "ng/mL", {"ng/mL": _same, "ug/L": _same, "nmol/L": _scale(1 / 2.496)}, (0, 1250)),
        # Total calcium 1.0-6.0 mmol/L (4.0-24 mg/dL). Low: severe hypocalcaemia in an emergency
        # department series had a median of 1.73 mmol/L (1.57-1.84; Duval et al., Endocr
        # Connect 2018;7:1067); 1.0 is an estimate of the survivable extreme. High: vitamin D
        # intoxication reaches 23.1 mg/dL = 5.76 mmol/L (Galior 2018). A usual 2.1-2.6 mmol/L
        # typed as mg/dL (0.52-0.65 mmol/L) or 8.5-10.5 mg/dL typed as mmol/L is refused.
        Quantity("calcium", "mmol/L", {"mmol/L": _same, "mg/dL": _scale(1 / 4.008)}, (1.0, 6.0)),
        # Creatinine 10-2500 umol/L (0.11-28 mg/dL): from severe muscle wasting to untreated
        # renal failure (estimate). A usual 0.9 mg/dL typed as umol/L or 80 umol/L typed as
        # mg/dL (7074 umol/L) is refused.
        Quantity("creatinine", "umol/L", {"umol/L": _same, "mg/dL": _scale(88.42)}, (10, 2500)),
        # eGFR 1-200 mL/min/1.73m2: from end-stage renal failure to glomerular hyperfiltration
        # (estimate). mL/min is taken as the same number (an approximation, not a conversion).
        Quantity("egfr", "mL/min/1.73m2", {"mL/min/1.73m2": _same, "mL/min": _same}, (1, 200)),
        # ALP 5-5000 U/L: from hypophosphatasia to Paget disease and bone metastases (estimate).
        # A value in ukat/L (1 ukat/L = 60 U/L) typed as U/L mostly falls below 5 and is refused.
        Quantity("alp", "U/L", {"U/L": _same, "IU/L": _same}, (5, 5000)),
        # Body weight 20-350 kg (44-772 lb) (estimate; hipdx is not for small children).
        Quantity("weight", "kg", {"kg": _same, "lb": _scale(0.45359237)}, (20, 350)),
        # Joint-fluid white cells 0-500,000 /uL (0-500 x10^9/L): septic arthritis is usually
        # above 50,000 and can exceed 200,000 (estimate). A count in x10^9/L typed as /uL (80
        # meaning 80,000) looks like a normal fluid and cannot be caught by a range.
        Quantity(
            "synovial_wbc",
            "cells/uL",
            {"cells/uL": _same, "/uL": _same, "cells/mm3": _same, "/mm3": _same, "10^9/L": _scale(1000.0), "10^3/uL": _scale(1000.0)},
            (0, 500000),
        ),
    )
}

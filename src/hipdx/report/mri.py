"""Plain-text and Markdown renderings of a hip MRI analysis, side by side, for a radiologist.

Pure formatting of :class:`hipdx.imaging.analyze.MriAnalysis`: no measurement is made here and
nothing absent from the analysis is filled in (an unmeasured value prints as "not measured").
"""

from __future__ import annotations

from collections.abc import Callable

from hipdx.imaging.analyze import MriAnalysis, SideOut
from hipdx.report.markup import escape_html

#: Said on every rendering: the numbers are automatic and must be checked on the images.
DISCLAIMER = (
    "Automatic measurements to support, not replace, the radiologist's reading: "
    "check every contour on the overlays before using a number."
)

_NOT = "not measured"
MRI_TITLE = "Hip MRI - automatic measurements"


def _num(value: float | None, unit: str, digits: int = 1) -> str:
    return _NOT if value is None else f"{value:.{digits}f} {unit}".rstrip()


def _pct(value: float | None) -> str:
    return _NOT if value is None else f"{100 * value:.0f}%"


def _head(s: SideOut) -> str:
    h = s.femoral_head
    if h is None:
        return "not found"
    x, y, z = h.center_mm
    found = " (partner search: radius of the other head)" if h.found_by == "partner search" else ""
    return f"r {h.radius_mm:.1f} mm at [{x:.1f}, {y:.1f}, {z:.1f}]{found}"


def _edema(s: SideOut) -> str:
    e = s.edema
    if e.volume_ml is None:
        return _NOT
    return f"{e.volume_ml:.1f} mL" if e.volume_ml > 0 else "none"


def _extent(s: SideOut) -> str:
    return _NOT if s.edema.volume_ml is None else s.edema.extent.value.replace("_", " ")


def _regions(s: SideOut) -> str:
    e = s.edema
    if e.volume_ml is None or not e.volume_ml:
        return "-" if e.volume_ml is not None else _NOT
    return f"{_pct(e.head_fraction)} / {_pct(e.neck_fraction)} / {_pct(e.intertrochanteric_fraction)}"


def _signal(s: SideOut) -> str:
    r = s.edema.signal_ratio
    return "-" if r is None else f"{r:.2f} x marrow"


def _band(s: SideOut) -> str:
    b = s.subchondral_band
    if b.present.value == "unknown" and b.undecided_because:
        return "none found, absence not decided (see the warnings)"
    if b.present.value != "present":
        return b.present.value if b.present.value != "unknown" else _NOT
    text = f"{_num(b.thickness_mm, 'mm')} thick, {_num(b.length_mm, 'mm')} long"
    return text + (" (indeterminate)" if b.indeterminate else "")


def _joint(attr: str) -> Callable[[SideOut], str]:
    def cell(s: SideOut) -> str:
        f = getattr(s, attr)
        if f.present.value == "unknown":
            return _NOT
        return f"{f.present.value} ({f.volume_ml:.1f} mL)" if f.volume_ml is not None else f.present.value

    return cell


#: The rows of the side-by-side table: label and how to render one side.
ROWS: tuple[tuple[str, Callable[[SideOut], str]], ...] = (
    ("femoral head (LPS, mm)", _head),
    ("edema volume", _edema),
    ("edema share of head and neck", lambda s: _pct(s.edema.fraction) if s.edema.volume_ml is not None else _NOT),
    ("edema extent", _extent),
    ("edematous share of head / neck / intertroch.", _regions),
    ("edema signal", _signal),
    ("subchondral low-signal band", _band),
    ("acetabular edema", _joint("acetabular_edema")),
    ("joint effusion", _joint("effusion")),
)


def side_to_side(analysis: MriAnalysis) -> str:
    d = analysis.side_to_side_edema_ml
    if d is None:
        return "Side-to-side: not comparable (edema measured on one side only or not at all)."
    if abs(d) < 0.05:
        return "Side-to-side: no difference in edema volume."
    more = "left" if d > 0 else "right"
    return f"Side-to-side: {abs(d):.1f} mL more edema on the {more}."


def mri_notes(analysis: MriAnalysis) -> list[str]:
    notes = []
    for name in ("right", "left"):
        b = getattr(analysis.sides, name).subchondral_band
        if b.present.value == "present" and b.indeterminate:
            notes.append(
                f"{name.capitalize()} band thickness is not decided against the 4 mm cut-off (Vande Berg): "
                f"{b.undecided_because or 'near the cut-off'}; read it on the images before staging."
            )
    return notes


def format_mri_analysis(analysis: MriAnalysis, markdown: bool = False, *, heading_level: int = 1, title: bool = True) -> str:
    """The analysis as a side-by-side table with comparison, notes, warnings and provenance.

    ``heading_level`` is the Markdown level of its title; ``title=False`` leaves the title out
    (for a report that gives the section its own heading).
    """
    cells = [(label, render(analysis.sides.right), render(analysis.sides.left)) for label, render in ROWS]
    series = analysis.provenance.series_used
    used = ", ".join(f"{kind}: {desc}" for kind, desc in series.items()) or "none"
    # Several series of a kind: the ones passed over and why (the reasons are in the provenance).
    passed_over = [
        f"Not used ({kind}): " + reason.split("; not used: ", 1)[1]
        for kind, reason in analysis.provenance.series_choice.items()
        if "; not used: " in reason
    ]
    lines: list[str] = []
    if markdown:  # series descriptions and warnings come from the files: made inert, as in the rest of the Markdown
        lines += [f"{'#' * heading_level} {MRI_TITLE}", ""] if title else []
        lines += [f"_{DISCLAIMER}_", "", f"Series used: {escape_html(used)}", ""]
        lines += [f"{escape_html(p)}\n" for p in passed_over]
        lines += ["| measure | right | left |", "|---|---|---|"]
        lines += [f"| {a} | {b} | {c} |" for a, b, c in cells]
        lines += ["", side_to_side(analysis)]
        lines += [f"- note: {n}" for n in mri_notes(analysis)]
        lines += [f"- **warning:** {escape_html(w)}" for w in analysis.warnings]
    else:
        w0 = max(len(a) for a, _, _ in cells)
        w1 = max(len("right"), *(len(b) for _, b, _ in cells))
        lines += [MRI_TITLE] if title else []
        lines += [DISCLAIMER, f"Series used: {used}", *passed_over, ""]
        lines.append(f"{'':{w0}}  {'right':{w1}}  left")
        lines += [f"{a:{w0}}  {b:{w1}}  {c}" for a, b, c in cells]
        lines += ["", side_to_side(analysis)]
        lines += [f"note: {n}" for n in mri_notes(analysis)]
        lines += [f"warning: {w}" for w in analysis.warnings]
    lines += ["", f"hipdx {analysis.provenance.hipdx_version}; method parameters in the JSON output (--format json)."]
    return "\n".join(lines)


def mri_in_brief(analysis: MriAnalysis) -> str:
    """One line for the one-screen report: edema and band on each side, to be checked on the overlays."""
    sides = []
    for name in ("right", "left"):
        s = getattr(analysis.sides, name)
        extent = f" ({_extent(s)})" if s.edema.volume_ml else ""
        sides.append(f"{name} edema {_edema(s)}{extent}, band {_band(s)}")
    return "MRI, automatic (check the overlays): " + "; ".join(sides) + "."

"""A picture of the course: pain over time since onset against the expected band.

:func:`plot_course` draws a :class:`~hipdx.reasoning.course.CourseReport` with matplotlib's
Agg canvas (no display, no global pyplot state) and writes PNG or SVG by the file's
suffix. The figure has a fixed size, so the image size is known in advance: PNG
``1000 x 600`` pixels, SVG ``720pt x 432pt`` (10 x 6 inches). Output is reproducible: no
dates or software versions in the file metadata, fixed SVG element ids.
"""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.layout_engine import ConstrainedLayoutEngine

from hipdx.errors import InputError
from hipdx.knowledge.course import Severity, band_at
from hipdx.reasoning.course import CourseReport, PainPosition

#: Figure size in inches and resolution: 1000 x 600 pixels as PNG.
FIGURE_SIZE_IN = (10.0, 6.0)
DPI = 100
SUFFIXES = (".png", ".svg")

_POINT_COLOURS = {
    PainPosition.within: "#1f77b4",
    PainPosition.above: "#d62728",
    PainPosition.below: "#2ca02c",
    PainPosition.no_expected_band: "#1f77b4",
}
_SEVERITY_COLOURS = {Severity.emergency: "#7f0000", Severity.urgent: "#d62728", Severity.soon: "#ff7f0e"}
_DAYS_PER_MONTH = 30.4375


def check_plot_path(path: str | Path) -> str:
    """The format (``png`` or ``svg``) a plot written to ``path`` takes from its suffix.

    Raises
    ------
    InputError
        The suffix is not ``.png`` or ``.svg``.
    """
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIXES:
        raise InputError(f"cannot write a plot to {path}: the file must end in .png or .svg")
    return suffix[1:]


def plot_course(report: CourseReport, path: str | Path) -> Path:
    """Draw the course in ``report`` and write it to ``path`` (``.png`` or ``.svg``).

    Pain scores of the visits are points (red above the expected band, green below),
    the expected band is shaded, each alert is a vertical line at the visit that raised it
    (colour by severity, title in the legend), and visits without a pain score are ticks
    on the time axis.

    Parameters
    ----------
    report
        The result of :func:`hipdx.reasoning.course.compare_course`.
    path
        Where to write; the suffix decides the format.

    Returns
    -------
    Path
        The path written.

    Raises
    ------
    InputError
        The suffix is not ``.png`` or ``.svg``, or the file cannot be written.

    Examples
    --------
    >>> plot_course(report, "course.png")  # doctest: +SKIP
    PosixPath('course.png')
    """
    path = Path(path)
    suffix = "." + check_plot_path(path)
    figure = course_figure(report)
    metadata = {"Software": None} if suffix == ".png" else {"Date": None, "Creator": None}
    try:
        with matplotlib.rc_context({"svg.hashsalt": "hipdx", "svg.fonttype": "path"}):
            figure.savefig(path, format=suffix[1:], dpi=DPI, metadata=metadata)
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path


def course_svg(report: CourseReport, statement: bool = True) -> bytes:
    """The plot of :func:`plot_course` as SVG bytes, for embedding in a report (reproducible, no
    file); ``statement=False`` leaves the decision-support statement to the report around it."""
    buffer = io.BytesIO()
    with matplotlib.rc_context({"svg.hashsalt": "hipdx", "svg.fonttype": "path"}):
        course_figure(report, statement).savefig(buffer, format="svg", dpi=DPI, metadata={"Date": None, "Creator": None})
    return buffer.getvalue()


def course_figure(report: CourseReport, statement: bool = True) -> Figure:
    """The figure of :func:`plot_course`, not yet written (for embedding in other reports); with
    ``statement`` (an image on its own) its footnote ends with the decision-support statement."""
    # constrained layout keeps the figure size; the bottom 3% is left for the footnote
    figure = Figure(figsize=FIGURE_SIZE_IN, dpi=DPI, layout=ConstrainedLayoutEngine(rect=(0, 0.03, 1, 0.97)))
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()

    last_visit = max((p.days_since_onset for p in report.points), default=0.0)
    x_max = max(365.0, last_visit * 1.1 + 14)

    expected = report.expected
    footnote = f"hipdx course knowledge {report.course_knowledge_version}. "
    if expected is not None and expected.pain_band is not None:
        days = [d for d, _, _ in expected.pain_band if d < x_max] + [x_max]
        band = [band_at(expected.pain_band, d) for d in days]
        ax.fill_between(
            days, [lo for lo, _ in band], [hi for _, hi in band],
            color="#9ecae1", alpha=0.45, linewidth=0,
            label=f"Expected pain for {report.condition.upper()} ({expected.pain_band_basis})",
        )
    else:
        footnote += f"No expected pain band for {report.condition_name}: see the expected course in the report. "

    scored = [p for p in report.points if p.pain_0_10 is not None]
    if scored:
        ax.plot(
            [p.days_since_onset for p in scored], [p.pain_0_10 for p in scored],
            color="#555555", linewidth=1.2, zorder=2,
        )
        for position, colour in _POINT_COLOURS.items():
            chosen = [p for p in scored if p.pain_position is position]
            if chosen:
                ax.scatter(
                    [p.days_since_onset for p in chosen], [p.pain_0_10 for p in chosen],
                    s=48, color=colour, edgecolor="white", linewidth=0.8, zorder=3,
                    label=_position_label(position),
                )
    unscored = [p.days_since_onset for p in report.points if p.pain_0_10 is None]
    if unscored:
        ax.plot(unscored, [-0.4] * len(unscored), linestyle="none", marker="|", markersize=12,
                color="#555555", label="Visit without a pain score")

    badges_at: dict[float, int] = {}
    for number, alert in enumerate(report.alerts, start=1):
        day = max(alert.days_since_onset)
        colour = _SEVERITY_COLOURS[alert.severity]
        stacked = badges_at[day] = badges_at.get(day, -1) + 1
        ax.axvline(day, color=colour, linestyle="--", linewidth=1.4, zorder=1,
                   label=f"{number}. {alert.severity.value}: {alert.title}")
        ax.text(day, 10.45 - 0.6 * stacked, str(number), color=colour, fontsize=9,
                fontweight="bold", ha="center", va="center",
                bbox={"boxstyle": "circle,pad=0.2", "facecolor": "white", "edgecolor": colour})

    ax.axvline(90, color="#bbbbbb", linewidth=0.8, linestyle=":", zorder=0)
    ax.set_xlim(0, x_max)
    ax.set_ylim(-0.8, 10.9)
    ax.set_yticks(range(0, 11))
    ax.set_xlabel("Days since onset of pain")
    ax.set_ylabel("Pain (0-10)")
    months = ax.secondary_xaxis(
        "top", functions=(lambda d: d / _DAYS_PER_MONTH, lambda m: m * _DAYS_PER_MONTH)
    )
    months.set_xlabel("Months since onset")
    ax.grid(axis="y", color="#eeeeee")
    title = f"Course of {report.case_id}" if report.case_id else "Course"
    ax.set_title(f"{title} against the expected course of {report.condition_name}", fontsize=11)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper right", fontsize=8, framealpha=0.9)
    figure.text(
        0.01, 0.005,
        footnote + ("hipdx supports a clinician's decision; it does not replace it." if statement else ""),
        fontsize=7, color="#777777", ha="left", va="bottom",
    )
    return figure


def _position_label(position: PainPosition) -> str:
    return {
        PainPosition.within: "Pain at a visit: within the band",
        PainPosition.above: "Pain at a visit: above the band",
        PainPosition.below: "Pain at a visit: below the band",
        PainPosition.no_expected_band: "Pain at a visit",
    }[position]

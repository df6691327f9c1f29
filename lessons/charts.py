"""Charts drawn on the server as SVG (pygal), inlined in the page.

The site's policy allows no inline script or style (``lessons._security_headers``), and
pages load nothing from other hosts. pygal's SVG carries both a script (its tooltips'
configuration, plus a CDN script unless ``js`` is emptied) and a ``<style>`` element, so
``render`` keeps only the drawing: no script, no style, no comments, no tooltip layer,
no namespace URLs (an SVG inside HTML needs none) and no ids but the chart's own. The
look comes from ``static/css/charts.css``, which is pygal's own stylesheet for the
site's ``STYLE``, written by ``python -m lessons.charts`` (a test checks it is current).

Each chart is an image with a title and a description (``role="img"``); the numbers are
in the data table the page puts beside it, which is what a screen reader reads and
what works when the SVG does not.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

import pygal
from lxml import etree
from markupsafe import Markup
from pygal.style import Style

from lessons.rules import DOMAIN_LABELS, KIND_LABELS, STATUS_LABELS

# pygal appends a finder for its map plug-ins (unused here) to ``sys.meta_path`` that
# only has the old ``find_module``: every later failed import, such as an optional
# module tried inside ``try``, then warns (ImportWarning). Take it out again.
sys.meta_path[:] = [finder for finder in sys.meta_path
                    if type(finder).__name__ != "PluginImportFixer"]

if TYPE_CHECKING:
    from lessons.services.trends import Medians, Series, Trends

FONT = 'system-ui, -apple-system, "Segoe UI", Roboto, sans-serif'
# The site's colours (static/css/muster.css) first, then quieter ones for long series.
COLOURS = ("#1f4e79", "#1e6b3a", "#8a5a00", "#a1261f", "#5b6770", "#4f81b0", "#2a7f7f",
           "#6b4c9a", "#6b7a1f", "#7a4b2a", "#a0456e", "#0d2a45")

STYLE = Style(
    background="#ffffff", plot_background="#ffffff",
    foreground="#1d2327", foreground_strong="#1d2327", foreground_subtle="#5b6770",
    guide_stroke_color="#d5dbe0", major_guide_stroke_color="#d5dbe0",
    opacity=".9", opacity_hover="1", transition="0ms", colors=COLOURS,
    font_family=FONT, title_font_family=FONT, label_font_family=FONT,
    major_label_font_family=FONT, legend_font_family=FONT, value_font_family=FONT,
    value_label_font_family=FONT, tooltip_font_family=FONT, no_data_font_family=FONT,
    title_font_size=18, legend_font_size=14, label_font_size=13, major_label_font_size=13,
    no_data_font_size=28,
)

CHART_KINDS = {
    "stacked": pygal.StackedBar,
    "bar": pygal.Bar,
    "hbar": pygal.HorizontalBar,
}
_CONFIG = dict(
    js=[],  # never a script from a CDN (nor any script: the page works without one)
    disable_xml_declaration=True, style=STYLE, legend_at_bottom=False, truncate_legend=40,
    truncate_label=24, no_data_text="Nothing to show", print_values=False,
    show_y_guides=True, margin=12, spacing=8,
)
# pygal's own ids and prefix, replaced by the chart's name (ids stay unique on the page).
_PREFIX = "chart-stylesheet"
_NAMESPACES = re.compile(r'\s+xmlns(:\w+)?="[^"]*"')
_NAME = re.compile(r"^[a-z][a-z0-9-]{0,40}$")


# A wide chart spans the page; a narrow one shares it with its table (drawn smaller, so
# its words come out at the same size on screen).
SIZES = {"wide": (900, 380), "narrow": (560, 360)}


def _chart(kind: str, labels: Sequence[str], series: Sequence[tuple[str, Sequence[float]]],
           size: str = "narrow", integer: bool = True):
    width, height = SIZES[size]
    chart = CHART_KINDS[kind](width=width, height=height, **_CONFIG)
    chart.x_labels = list(labels)
    chart.show_legend = len(series) > 1  # one series: the chart's title names it
    if integer:
        # Counts: whole numbers on the value axis, about eight steps at most.
        top = max((v for _, values in series for v in values if v), default=0)
        step = max(1, math.ceil(top / 8))
        chart.y_labels = list(range(0, top + step, step))
    for name, values in series:
        chart.add(name, [value if value is not None else None for value in values])
    return chart


def render(name: str, title: str, description: str, kind: str, labels: Sequence[str],
           series: Sequence[tuple[str, Sequence[float]]], size: str = "narrow",
           integer: bool = True) -> Markup:
    """One chart as inline SVG: ``kind`` (``stacked``, ``bar``, ``hbar``) with a value per
    label in each series. ``name`` becomes its id (``chart-<name>``); ``title`` and
    ``description`` its accessible name and description; ``integer`` for counts."""
    if not _NAME.match(name):
        raise ValueError(f"bad chart name {name!r}")
    svg = _chart(kind, labels, series, size, integer).render(is_unicode=True)
    root = etree.fromstring(_NAMESPACES.sub("", svg))
    for comment in root.xpath("//comment()"):
        comment.getparent().remove(comment)
    for element in root.xpath("//defs | //script | //style | //*[contains(@class, "
                              "'tooltip-overlay')] | //desc[@class]"):
        element.getparent().remove(element)
    for element in root.xpath("//*[@id]"):
        del element.attrib["id"]
    for element in root.xpath("//*[@style]"):
        del element.attrib["style"]
    for old in root.findall("title"):
        root.remove(old)
    root.set("id", f"chart-{name}")
    root.set("class", "pygal-chart")
    root.set("role", "img")
    root.set("aria-labelledby", f"chart-{name}-title")
    root.set("aria-describedby", f"chart-{name}-desc")
    heading = etree.Element("title", id=f"chart-{name}-title")
    heading.text = title
    desc = etree.Element("desc", id=f"chart-{name}-desc")
    desc.text = description
    root.insert(0, desc)
    root.insert(0, heading)
    return Markup(etree.tostring(root, encoding="unicode"))


# --- the dashboard's charts ------------------------------------------------------------------
STEP_LABELS = {"proposed": "Proposed", "accepted": "Accepted", "incorporated": "Incorporated",
               "effective": "Effective", "not_effective": "Not effective"}


def _over_time(name: str, what: str, series: Series, labels: dict[str, str]) -> Markup:
    return render(name, f"Lessons by {what} over time",
                  f"Stacked bars: lessons per period, split by {what}. The same figures "
                  "are in the table beside the chart.", "stacked", series.periods,
                  [(labels.get(key, key), series.counts[key]) for key in series.keys],
                  size="wide")


def _medians(name: str, by: str, medians: Medians, labels: dict[str, str]) -> Markup:
    rows = medians.rows
    return render(name, f"Median days by {by}",
                  f"Bars: median days from submitted to validated and from validated to "
                  f"learned, for each {by}. The same figures are in the table beside the "
                  "chart.", "hbar", [labels.get(g, g) for g, _, _ in rows],
                  [("Submitted to validated", [sv.days if sv else None for _, sv, _ in rows]),
                   ("Validated to learned", [vl.days if vl else None for _, _, vl in rows])],
                  size="wide", integer=False)


def dashboard(trends: Trends) -> dict[str, Markup]:
    """Every chart of the dashboard, by name, drawn from the same figures as its table."""
    pipeline, barriers = trends.pipeline, trends.barriers
    return {
        "status": _over_time("status", "status", trends.by_status, STATUS_LABELS),
        "kind": _over_time("kind", "kind", trends.by_kind, KIND_LABELS),
        "domain": _over_time("domain", "domain", trends.by_domain, DOMAIN_LABELS),
        "median-nation": _medians("median-nation", "nation", trends.medians_by_nation, {}),
        "median-domain": _medians("median-domain", "domain", trends.medians_by_domain,
                                  DOMAIN_LABELS),
        "overdue": render(
            "overdue", "Overdue remedial actions by owner nation",
            "Bars: open remedial actions past their due date, for each owner nation. The "
            "same figures are in the table beside the chart.", "hbar",
            [o.nation for o in trends.overdue],
            [("Overdue actions", [o.actions for o in trends.overdue])]),
        "pipeline": render(
            "pipeline", "Attached lessons by step",
            "Bars: lessons attached to exercises at each step, from proposed to effective "
            "or not effective. The same figures are in the table beside the chart.", "bar",
            [STEP_LABELS[step] for step in pipeline.steps],
            [("Attached lessons", list(pipeline.steps.values()))]),
        "barriers": render(
            "barriers", "Withheld lessons and release requests by nation",
            "Bars: for each partner nation, attached lessons it may not receive and the "
            "release requests made, approved and declined for it. The same figures are in "
            "the table beside the chart.", "hbar", [n.nation for n in barriers.nations],
            [("Lessons withheld", [n.lessons for n in barriers.nations]),
             ("Requests made", [n.asked for n in barriers.nations]),
             ("Approved", [n.approved for n in barriers.nations]),
             ("Declined", [n.declined for n in barriers.nations])], size="wide"),
    }


def stylesheet() -> str:
    """The charts' CSS: pygal's stylesheets for ``STYLE``, for every chart of the page
    (``svg.pygal-chart``) instead of one chart's id, plus the size rules."""
    chart = _chart("bar", ["a"], [(str(i), [1]) for i in range(len(COLOURS))])
    chart.uuid = _PREFIX.removeprefix("chart-")
    svg = chart.render(is_unicode=True)
    root = etree.fromstring(_NAMESPACES.sub("", svg))
    css = "\n".join(style.text or "" for style in root.iter("style"))
    css = css.replace(f"#{_PREFIX}", "svg.pygal-chart")
    lines = [line.strip() for line in css.splitlines() if line.strip()]
    return ("/* Charts on the dashboard: written by `python -m lessons.charts > "
            "static/css/charts.css` from lessons/charts.py's STYLE. Do not edit. */\n"
            + "\n".join(lines) + "\n"
            + LAYOUT)


# The dashboard's layout: a chart with its table beside it, one above the other on a phone.
LAYOUT = """svg.pygal-chart { width: 100%; height: auto; display: block; }
.trend { display: grid; grid-template-columns: minmax(0, 3fr) minmax(0, 2fr); gap: 1.25rem;
  align-items: start; margin: .5rem 0 2rem; }
.trend.wide { grid-template-columns: minmax(0, 1fr); }
.trend figure { margin: 0; border: 1px solid #d5dbe0; background: #fff; padding: .5rem; }
.trend caption { text-align: left; font-weight: 600; padding-bottom: .25rem; }
.trend td.num, .trend th.num { text-align: right; font-variant-numeric: tabular-nums; }
.trend .table-scroll { overflow-x: auto; min-width: 0; }
.dashboard-summary { font-size: 1.05rem; }
.trend table + table { margin-top: 1.25rem; }
@media (max-width: 50rem) {
  .trend { grid-template-columns: minmax(0, 1fr); }
  /* A phone shows each table row as a card (muster.css): the caption spans the cards. */
  .trend caption { display: block; }
}
@media print { .trend { break-inside: avoid; } form.dashboard-filters { display: none; } }
"""


if __name__ == "__main__":
    sys.stdout.write(stylesheet())

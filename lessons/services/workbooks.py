"""Readable spreadsheets (.xlsx) of search results and read-ahead packets.

The exchange CSV (``spreadsheet.py``) is a contract for machines: technical keys, JSON
in a cell, every field, lossless round trips. Staffs who keep improvement plans in
spreadsheets want something else: a sheet that says at its top what it holds and how it
is marked, columns named as people say them and in the order they read a lesson, text
that wraps, a frozen heading and a filter, and a link back to each lesson. This module
writes that, and nothing reads it back.

The callers have applied the policy (``exchange.export_lessons`` for search results,
``packets.packet`` for a packet) and audited the download; this module only lays out
the lessons it is given. Text that a spreadsheet would run as a formula (``=``, ``+``,
``-``, ``@``) is stored as text, never as a formula.
"""

from __future__ import annotations

import io
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING

from flask import Response, current_app, request, url_for
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet._write_only import WriteOnlyWorksheet

from lessons.models import Lesson, RemedialAction, User
from lessons.models.base import utcnow
from lessons.rules import (
    DOMAIN_LABELS,
    FUNCTION_LABELS,
    KIND_LABELS,
    QUERY_MAX,
    STATUS_LABELS,
    milestone_label,
)
from lessons.search import FACET_LABELS

if TYPE_CHECKING:  # packets imports the lesson services, which import exchange
    from lessons.services.packets import Packet

MIMETYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

# (heading, width in characters): the order a staff reads a lesson in.
LESSON_COLUMNS: tuple[tuple[str, int], ...] = (
    ("Title", 40), ("Kind", 13), ("Status", 15), ("Observed", 12), ("Originator", 11),
    ("REL TO", 18), ("Observation", 60), ("Discussion", 60), ("Recommendation", 60),
    ("Friction", 45), ("What was done", 45), ("Limits", 45), ("Permanence", 12),
    ("Remedial actions", 50), ("Link", 45),
)
# A packet is read objective by objective, so its rows say which objective they serve.
PACKET_COLUMNS: tuple[tuple[str, int], ...] = (("Objective", 30), *LESSON_COLUMNS)

# Excel refuses to open a cell longer than this; lesson text may be up to 50,000.
CELL_MAX = 32_767
CUT_NOTE = " […] (cut here: the full text is on the lesson's page)"
# Text a spreadsheet would take as a formula (or, after a tab or CR, as one).
_FORMULA = re.compile(r"^[=+\-@\t\r]")
# Five rows above the column headings: marking, subject, who and when, count, a gap.
HEADING_ROW = 6
NAME_PART_MAX = 60

_BOLD = Font(bold=True)
_MARKING_FONT = Font(bold=True, size=12)
_HEADING_FILL = PatternFill("solid", fgColor="DDE4EE")
_WRAP = Alignment(wrap_text=True, vertical="top")
_TOP = Alignment(vertical="top")


@dataclass(frozen=True)
class Heading:
    """The block above the columns: what the sheet holds, its marking, who took it when."""

    marking: str
    subject: str
    viewer: str  # "gb.planner (GBR)"
    when: datetime  # UTC
    count: int

    @property
    def lines(self) -> list[str]:
        lessons = f"{self.count:,} lesson{'' if self.count == 1 else 's'}"
        return [self.marking, self.subject,
                f"Downloaded by {self.viewer} on {self.when:%Y-%m-%d at %H:%M} UTC",
                lessons]


def viewer_label(user: User) -> str:
    return f"{user.username} ({user.nation_code})"


def highest_marking(lessons: Sequence[Lesson], classifications: Sequence[str]) -> str:
    """The marking a sheet of ``lessons`` carries: the highest classification among them
    (in the configured order, lowest first) and REL TO the nations every one of them is
    releasable to, so the sheet as a whole goes no further than its narrowest row."""
    order = list(classifications) or ["UNCLASSIFIED"]
    if not lessons:
        return order[0]
    highest = max((lesson.classification for lesson in lessons),
                  key=lambda c: order.index(c) if c in order else len(order))
    common = set(lessons[0].releasable_to)
    for lesson in lessons[1:]:
        common &= set(lesson.releasable_to)
    return f"{highest} // REL TO {', '.join(sorted(common)) or 'no nation in common'}"


def search_subject(query: str, filters: Mapping[str, Iterable[str]],
                   facet_labels: Mapping[str, str]) -> str:
    """``Search results for "mission network", filtered by Kind: Workaround``."""
    words = f"for \u201c{query}\u201d" if query else "for every lesson"
    chosen = [f"{facet_labels.get(name, name)}: {_filter_value(name, value)}"
              for name, values in filters.items() for value in values]
    return f"Search results {words}" + (f", filtered by {'; '.join(chosen)}" if chosen else "")


def _filter_value(name: str, value: str) -> str:
    """A filter value as the search page's chips show it."""
    labels = {"kind": KIND_LABELS, "status": STATUS_LABELS, "domain": DOMAIN_LABELS,
              "function": FUNCTION_LABELS}.get(name)
    if labels:
        return labels.get(value, value)
    return value.upper() if name in ("nation", "originator") else value


# --- cells ------------------------------------------------------------------------------------
def _text(ws: WriteOnlyWorksheet, value: str, *, wrap: bool = True) -> WriteOnlyCell:
    """A text cell that stays text: no formula, no characters XML cannot hold, no more
    than a spreadsheet can open."""
    value = ILLEGAL_CHARACTERS_RE.sub("", value or "")
    if len(value) > CELL_MAX:
        value = value[:CELL_MAX - len(CUT_NOTE)] + CUT_NOTE
    cell = WriteOnlyCell(ws, value=value or None)  # nothing to say: an empty cell
    if value:
        cell.data_type = "s"  # openpyxl would otherwise store "=..." as a formula
    if _FORMULA.match(value):
        cell.quotePrefix = True  # and the spreadsheet shows it as typed, when edited too
    cell.alignment = _WRAP if wrap else _TOP
    return cell


def _date(ws: WriteOnlyWorksheet, value: date | None) -> WriteOnlyCell:
    cell = WriteOnlyCell(ws, value=value)
    cell.number_format = "yyyy-mm-dd"
    cell.alignment = _TOP
    return cell


def _link(ws: WriteOnlyWorksheet, url: str) -> WriteOnlyCell:
    cell = _text(ws, url, wrap=False)
    cell.hyperlink = url
    cell.style = "Hyperlink"
    cell.alignment = _TOP
    return cell


def action_line(action: RemedialAction) -> str:
    """``Train the J6 cell (owner: 1 Div G6, GBR; due 2027-01-31; open)``."""
    owner = ", ".join(part for part in (action.owner_org, action.owner_nation or "") if part)
    due = f"due {action.due_on.isoformat()}" if action.due_on else "no due date"
    return f"{action.description} (owner: {owner or 'not named'}; {due}; {action.status})"


def lesson_cells(ws: WriteOnlyWorksheet, lesson: Lesson, url: str) -> list[WriteOnlyCell]:
    """One lesson's cells in ``LESSON_COLUMNS`` order; workaround fields only for a
    workaround (another kind has none to show)."""
    workaround = lesson.kind == "workaround"
    return [
        _text(ws, lesson.title),
        _text(ws, KIND_LABELS.get(lesson.kind, lesson.kind)),
        _text(ws, STATUS_LABELS.get(lesson.status, lesson.status)),
        _date(ws, lesson.observed_on),
        _text(ws, lesson.originator_nation),
        _text(ws, ", ".join(sorted(lesson.releasable_to))),
        _text(ws, lesson.observation),
        _text(ws, lesson.discussion),
        _text(ws, lesson.recommendation),
        _text(ws, lesson.friction if workaround else ""),
        _text(ws, lesson.workaround if workaround else ""),
        _text(ws, lesson.limits if workaround else ""),
        _text(ws, (lesson.permanence or "").capitalize() if workaround else ""),
        _text(ws, "\n".join(action_line(a) for a in lesson.actions)),
        _link(ws, url),
    ]


# --- sheets -----------------------------------------------------------------------------------
def _sheet(heading: Heading, columns: Sequence[tuple[str, int]], title: str,
           rows: Callable[[WriteOnlyWorksheet], Iterable[list[WriteOnlyCell]]]) -> bytes:
    """One sheet: the heading block, the column headings (frozen, filtered), one row per
    lesson, the marking again below, and the marking on every printed page."""
    book = Workbook(write_only=True)
    book.properties.creator = "Muster"
    book.properties.title = heading.subject[:250]
    ws = book.create_sheet(title)
    for number, (_, width) in enumerate(columns, start=1):
        ws.column_dimensions[get_column_letter(number)].width = width
    last_column = get_column_letter(len(columns))
    ws.freeze_panes = f"A{HEADING_ROW + 1}"
    ws.print_title_rows = f"{HEADING_ROW}:{HEADING_ROW}"
    ws.page_setup.orientation = "landscape"
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0
    ws.sheet_properties.pageSetUpPr.fitToPage = True
    for part in (ws.oddHeader, ws.evenHeader):
        part.center.text = heading.marking.replace("&", "&&")
    for part in (ws.oddFooter, ws.evenFooter):
        part.center.text = heading.marking.replace("&", "&&")
        part.right.text = "Page &P of &N"

    for number, line in enumerate(heading.lines):
        cell = _text(ws, line, wrap=False)
        cell.font = _MARKING_FONT if number == 0 else _BOLD if number == 1 else Font()
        ws.append([cell])
    ws.append([])
    headings = []
    for name, _ in columns:
        cell = _text(ws, name, wrap=False)
        cell.font = _BOLD
        cell.fill = _HEADING_FILL
        headings.append(cell)
    ws.append(headings)
    count = 0
    for row in rows(ws):
        ws.append(row)
        count += 1
    ws.auto_filter.ref = f"A{HEADING_ROW}:{last_column}{HEADING_ROW + max(count, 1)}"
    ws.append([])
    closing = _text(ws, heading.marking, wrap=False)
    closing.font = _MARKING_FONT
    ws.append([closing])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def search_workbook(lessons: Sequence[Lesson], heading: Heading,
                    url_for_lesson: Callable[[Lesson], str]) -> bytes:
    """Search results as a workbook, one row a lesson in the order given."""
    def rows(ws: WriteOnlyWorksheet) -> Iterable[list[WriteOnlyCell]]:
        for lesson in lessons:
            yield lesson_cells(ws, lesson, url_for_lesson(lesson))

    return _sheet(heading, LESSON_COLUMNS, "Search results", rows)


def packet_workbook(groups: Iterable, heading: Heading,
                    url_for_lesson: Callable[[Lesson], str]) -> bytes:
    """A read-ahead packet as a workbook: its lessons objective by objective, as the
    packet page lists them (``groups``: ``packets.PacketGroup``)."""
    def rows(ws: WriteOnlyWorksheet) -> Iterable[list[WriteOnlyCell]]:
        for group in groups:
            objective = (f"Objective {group.objective.position}: {group.objective.text}"
                         if group.objective else "Not tied to an objective")
            for link in group.links:
                yield [_text(ws, objective), *lesson_cells(ws, link.lesson,
                                                           url_for_lesson(link.lesson))]

    return _sheet(heading, PACKET_COLUMNS, "Read-ahead packet", rows)


def _packet_subject(exercise_name: str, milestone: str, due_on: date | None,
                    audience: Sequence[str]) -> str:
    """``Read-ahead packet: Exercise X, Initial planning conference (2027-01-10), for
    AUS, GBR, USA``."""
    when = f" ({due_on.isoformat()})" if due_on else ""
    return (f"Read-ahead packet: {exercise_name}, {milestone_label(milestone)}{when}, "
            f"for {', '.join(audience)}")


# --- file names -------------------------------------------------------------------------------
def slug(text: str, fallback: str) -> str:
    """``Mission network!`` -> ``mission-network``: ASCII letters, digits and hyphens,
    short enough for a file name; ``fallback`` when nothing is left."""
    ascii_text = unicodedata.normalize("NFKD", text or "").encode("ascii", "ignore").decode()
    cleaned = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    return cleaned[:NAME_PART_MAX].rstrip("-") or fallback


def search_filename(query: str, day: date) -> str:
    return f"muster-search-{slug(query, 'all')}-{day.isoformat()}.xlsx"


def packet_filename(exercise_name: str, milestone: str, day: date, ext: str = "xlsx") -> str:
    """One name for a packet in every format (the workbook, PDF and Word)."""
    return (f"muster-packet-{slug(exercise_name, 'exercise')}-{slug(milestone, 'milestone')}"
            f"-{day.isoformat()}.{ext}")


# --- downloads --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Download:
    name: str
    body: bytes

    def response(self) -> Response:
        return Response(self.body, mimetype=MIMETYPE, headers={
            "Content-Disposition": f'attachment; filename="{self.name}"'})


def lesson_link(lesson: Lesson) -> str:
    """The lesson page's absolute address: the configured site address (``BASE_URL``)
    when there is one, else the address this request came to."""
    base = current_app.config.get("BASE_URL") or request.host_url
    return base.rstrip("/") + url_for("lessons.detail", public_id=lesson.public_id)


def search_results(viewer: User, lessons: Sequence[Lesson], query: str,
                   filters: Mapping[str, Iterable[str]],
                   classifications: Sequence[str]) -> Download:
    """``lessons`` (already through the policy and audited, in search order) as the
    workbook ``muster-search-<words>-<day>.xlsx``."""
    query = (query or "").strip()[:QUERY_MAX]
    when = utcnow().replace(microsecond=0)
    heading = Heading(marking=highest_marking(lessons, classifications),
                      subject=search_subject(query, filters, FACET_LABELS),
                      viewer=viewer_label(viewer), when=when, count=len(lessons))
    return Download(search_filename(query, when.date()),
                    search_workbook(lessons, heading, lesson_link))


def packet(viewer: User, result: Packet) -> Download:
    """A read-ahead packet (``packets.packet``, audited by the caller) as the workbook
    ``muster-packet-<exercise>-<milestone>-<day>.xlsx``, marked as the packet page is."""
    when = utcnow().replace(microsecond=0)
    heading = Heading(marking=result.marking,
                      subject=_packet_subject(result.exercise.name, result.milestone.name,
                                              result.milestone.due_on, result.audience),
                      viewer=viewer_label(viewer), when=when, count=len(result.lessons))
    return Download(packet_filename(result.exercise.name, result.milestone.name, when.date()),
                    packet_workbook(result.groups, heading, lesson_link))

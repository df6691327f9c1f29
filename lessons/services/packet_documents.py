"""The read-ahead packet as a document a planner e-mails to partner cells: PDF and Word.

Both formats are drawn from one ``PacketContent`` built here, so the PDF and the .docx
hold the same words: a cover (exercise, milestone, audience, date, marking, and how many
lessons are withheld and why, in words), contents, then the lessons grouped by
objective with every field of their kind (a workaround's friction, what was done,
limits and permanence). The content comes only from ``packets.packet``, which already
holds nothing the viewer may not see and nothing not releasable to the whole audience;
this module adds no query of its own.

PDF: WeasyPrint (it needs Pango from the system) renders
``templates/exercises/packet_print.html`` with ``static/css/print-packet.css``. The
marking and "Page N of M" live in CSS page-margin boxes, outside the page area, so they
never cover body text; headings are kept with their text and lessons flow on (no page
break per lesson), so no page is left half empty but the cover and the last. Nothing is
fetched while rendering (no URL reaches the fetcher).

Word: python-docx, built in code: the marking in every page's header and footer, page
numbers as PAGE / NUMPAGES fields (Word fills them in), headings kept with the next
paragraph.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from flask import render_template

from lessons.errors import ValidationFailed
from lessons.models import Lesson
from lessons.rules import (
    DOMAIN_LABELS,
    KIND_LABELS,
    PURPOSE_LABELS,
    STATUS_LABELS,
    milestone_label,
)
from lessons.services.packets import Packet
from lessons.services.workbooks import packet_filename

FORMATS = {
    "pdf": "application/pdf",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
}
CSS_FILE = Path(__file__).resolve().parents[2] / "static" / "css" / "print-packet.css"
# Characters of lesson text in one document: about 250 printed pages, which WeasyPrint
# lays out in well under the request timeout (MUSTER_TIMEOUT, 30 s) on a small server.
# Longer packets are refused in words; the spreadsheet and CSV have no such bound.
DOCUMENT_TEXT_MAX = 1_000_000
PERMANENCE_LABELS = {"interim": "Interim: to be replaced by a lasting fix",
                     "permanent": "Permanent: the accepted way of working"}
TEXT_FIELDS = (("observation", "Observation"), ("discussion", "Discussion"),
               ("conclusion", "Conclusion"), ("recommendation", "Recommendation"))
WORKAROUND_TEXT = (("friction", "Friction"), ("workaround", "What was done"),
                   ("limits", "Limits"))


@dataclass
class Part:
    """One labelled field of a lesson; ``paragraphs`` are its text split at line breaks."""

    label: str
    paragraphs: list[str]


@dataclass
class Entry:
    """One lesson as the packet prints it."""

    anchor: str
    title: str
    marking: str
    facts: list[str]
    parts: list[Part]
    actions: list[str] = field(default_factory=list)


@dataclass
class Chapter:
    """The lessons supporting one objective (or none)."""

    anchor: str
    heading: str
    entries: list[Entry]


@dataclass
class PacketContent:
    """Everything either document says, in reading order."""

    title: str
    exercise: str
    milestone: str
    exercise_dates: str
    audience: str
    prepared: str
    marking: str
    included: str
    withheld: str
    proposed: str
    chapters: list[Chapter]


def _plural(count: int, one: str, many: str | None = None) -> str:
    return f"{count} {one if count == 1 else (many or one + 's')}"


def _paragraphs(text: str) -> list[str]:
    """A text field's lines as paragraphs (blank lines dropped)."""
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


def withheld_in_words(result: Packet) -> str:
    """Why lessons the planner attached are not in this packet, without naming them: the
    document goes to the audience, so titles of what they may not read stay out."""
    count = len(result.withheld)
    if not count:
        return ("No lesson is withheld: every accepted lesson attached at this milestone "
                "is releasable to the whole audience.")
    reasons = [f"{nation} ({_plural(n, 'lesson')})" for nation, n in result.lacking.items()]
    if len(reasons) > 1:
        reasons_text = ", ".join(reasons[:-1]) + " and " + reasons[-1]
    else:
        reasons_text = reasons[0]
    verb = "is" if count == 1 else "are"
    return (f"{_plural(count, 'further lesson')} attached at this milestone {verb} withheld "
            f"from this packet because {'it is' if count == 1 else 'they are'} not "
            f"releasable to every nation in the audience. Missing release: {reasons_text}.")


def _facts(link) -> list[str]:
    lesson: Lesson = link.lesson
    facts = [f"Reference {lesson.external_id}", KIND_LABELS.get(lesson.kind, lesson.kind),
             STATUS_LABELS.get(lesson.status, lesson.status),
             f"Originator {lesson.originator_nation}",
             f"Purpose: {PURPOSE_LABELS.get(link.purpose, link.purpose)}"]
    if lesson.source_event:
        facts.append(f"Event: {lesson.source_event}")
    if lesson.observed_on:
        facts.append(f"Observed {lesson.observed_on.isoformat()}")
    if lesson.location:
        facts.append(f"Location: {lesson.location}")
    if lesson.unit:
        facts.append(f"Unit: {lesson.unit}")
    if lesson.domains:
        facts.append("Domains: " + ", ".join(DOMAIN_LABELS.get(d, d) for d in lesson.domains))
    if lesson.tags:
        facts.append("Tags: " + ", ".join(lesson.tags))
    return facts


def _parts(link) -> list[Part]:
    """Every filled field of the lesson's kind, in the order a reader follows them."""
    lesson: Lesson = link.lesson
    parts: list[Part] = []
    if link.note:
        parts.append(Part("Planner's note", _paragraphs(link.note)))
    for key, label in TEXT_FIELDS:
        if getattr(lesson, key):
            parts.append(Part(label, _paragraphs(getattr(lesson, key))))
    if lesson.kind == "workaround":
        for key, label in WORKAROUND_TEXT:
            if getattr(lesson, key):
                parts.append(Part(label, _paragraphs(getattr(lesson, key))))
        if lesson.permanence:
            parts.append(Part("Permanence", [PERMANENCE_LABELS.get(lesson.permanence,
                                                                   lesson.permanence)]))
    return [part for part in parts if part.paragraphs]


def _actions(lesson: Lesson) -> list[str]:
    lines = []
    for action in lesson.actions:
        owner = action.owner_org or ""
        if action.owner_nation:
            owner = f"{owner} ({action.owner_nation})".strip()
        bits = [action.description.strip()]
        if owner:
            bits.append(f"owner {owner}")
        if action.due_on:
            bits.append(f"due {action.due_on.isoformat()}")
        bits.append(action.status)
        lines.append("; ".join(bits))
    return lines


def packet_content(result: Packet, prepared_by: str, today: date) -> PacketContent:
    """The words of the packet document, shared by the PDF and the Word file."""
    exercise = result.exercise
    milestone = milestone_label(result.milestone.name)
    if result.milestone.due_on:
        milestone += f", {result.milestone.due_on.isoformat()}"
    chapters = []
    for number, group in enumerate(result.groups, start=1):
        heading = (f"Objective {group.objective.position}: {group.objective.text}"
                   if group.objective else "Not tied to an objective")
        entries = [Entry(anchor=f"lesson-{link.lesson.public_id}", title=link.lesson.title,
                         marking=link.lesson.marking, facts=_facts(link), parts=_parts(link),
                         actions=_actions(link.lesson)) for link in group.links]
        chapters.append(Chapter(anchor=f"objective-{number}", heading=heading,
                                entries=entries))
    count = len(result.lessons)
    proposed = ""
    if result.proposed:
        proposed = (f"{_plural(result.proposed, 'lesson')} at this milestone "
                    f"{'is' if result.proposed == 1 else 'are'} still only proposed and "
                    "will join a packet once a planner accepts "
                    f"{'it' if result.proposed == 1 else 'them'}.")
    return PacketContent(
        title=f"Read-ahead packet: {exercise.name}",
        exercise=exercise.name, milestone=milestone,
        exercise_dates=f"{exercise.starts_on.isoformat()} to {exercise.ends_on.isoformat()}",
        audience=", ".join(result.audience),
        prepared=f"{prepared_by} on {today.isoformat()}", marking=result.marking,
        included=(f"This packet holds {_plural(count, 'lesson')} releasable to every "
                  "nation in the audience."),
        withheld=withheld_in_words(result), proposed=proposed, chapters=chapters)


def file_name(result: Packet, fmt: str, today: date) -> str:
    """Says what the file holds: muster-packet-<exercise>-<milestone>-<date>.<fmt>, as
    the packet's workbook is named."""
    return packet_filename(result.exercise.name, result.milestone.name, today, fmt)


# --- PDF ----------------------------------------------------------------------------------
def _no_fetching(url: str, *args, **kwargs):
    """WeasyPrint's URL fetcher: the packet needs nothing from outside the process."""
    raise ValueError(f"The packet document loads no resources ({url[:40]}).")


def packet_pdf(content: PacketContent) -> bytes:
    """The packet as PDF: CSS paged media, marking and page numbers in the page margins."""
    from weasyprint import CSS, HTML

    html = render_template("exercises/packet_print.html", doc=content)
    stylesheet = CSS(string=CSS_FILE.read_text(encoding="utf-8"), url_fetcher=_no_fetching)
    document = HTML(string=html, url_fetcher=_no_fetching, base_url=None)
    # Tagged: headings, paragraphs and reading order reach screen readers and reflow.
    return document.write_pdf(stylesheets=[stylesheet], pdf_tags=True)


# --- Word ---------------------------------------------------------------------------------
def _field(paragraph, instruction: str) -> None:
    """A Word field (PAGE, NUMPAGES) as begin / instruction / separate / result / end runs,
    so Word shows the live number and readers of the XML find a placeholder."""
    from docx.oxml import OxmlElement
    from docx.oxml.ns import qn

    def char(kind: str):
        run = paragraph.add_run()
        element = OxmlElement("w:fldChar")
        element.set(qn("w:fldCharType"), kind)
        run._r.append(element)

    char("begin")
    run = paragraph.add_run()
    text = OxmlElement("w:instrText")
    text.set(qn("xml:space"), "preserve")
    text.text = f" {instruction} "
    run._r.append(text)
    char("separate")
    paragraph.add_run("1")
    char("end")


def _marking_paragraph(container, marking: str):
    from docx.enum.text import WD_ALIGN_PARAGRAPH
    from docx.shared import Pt, RGBColor

    paragraph = container.add_paragraph()
    paragraph.alignment = WD_ALIGN_PARAGRAPH.CENTER
    run = paragraph.add_run(marking)
    run.bold = True
    run.font.size = Pt(9)
    run.font.color.rgb = RGBColor(0x15, 0x57, 0x24)
    return paragraph


def packet_docx(content: PacketContent) -> bytes:
    """The packet as a Word document with the same words as the PDF."""
    from docx import Document
    from docx.enum.section import WD_SECTION
    from docx.enum.text import WD_ALIGN_PARAGRAPH, WD_BREAK
    from docx.shared import Cm, Pt

    doc = Document()
    doc.core_properties.title = content.title
    doc.core_properties.subject = content.marking
    doc.core_properties.author = "Muster"
    normal = doc.styles["Normal"]
    normal.font.size = Pt(10.5)
    normal.paragraph_format.widow_control = True
    section = doc.sections[0]
    section.start_type = WD_SECTION.NEW_PAGE
    section.page_height, section.page_width = Cm(29.7), Cm(21.0)
    section.top_margin = section.bottom_margin = Cm(2.4)
    section.left_margin = section.right_margin = Cm(2.0)
    header = section.header
    header.paragraphs[0].text = ""
    header._element.remove(header.paragraphs[0]._p)
    _marking_paragraph(header, content.marking)
    footer = section.footer
    footer._element.remove(footer.paragraphs[0]._p)
    _marking_paragraph(footer, content.marking)
    pages = footer.add_paragraph()
    pages.alignment = WD_ALIGN_PARAGRAPH.RIGHT
    pages.add_run("Page ")
    _field(pages, "PAGE")
    pages.add_run(" of ")
    _field(pages, "NUMPAGES")

    def heading(text: str, level: int):
        paragraph = doc.add_heading(text, level=level)
        paragraph.paragraph_format.keep_with_next = True
        return paragraph

    # The cover.
    kicker = doc.add_paragraph().add_run("Read-ahead packet")
    kicker.bold = True
    kicker.font.size = Pt(12)
    heading(content.exercise, 0)
    doc.add_paragraph(content.milestone).runs[0].font.size = Pt(14)
    for label, value in (("Exercise dates", content.exercise_dates),
                         ("Audience", content.audience),
                         ("Prepared by", content.prepared), ("Marking", content.marking)):
        paragraph = doc.add_paragraph()
        paragraph.add_run(f"{label}: ").bold = True
        paragraph.add_run(value)
    for text in (content.included, content.withheld, content.proposed):
        if text:
            doc.add_paragraph(text)
    doc.add_paragraph().add_run().add_break(WD_BREAK.PAGE)

    # Contents, then the lessons flowing on after it.
    heading("Contents", 1)
    for chapter in content.chapters:
        paragraph = doc.add_paragraph(chapter.heading)
        paragraph.paragraph_format.keep_with_next = True
        for entry in chapter.entries:
            item = doc.add_paragraph(entry.title, style="List Bullet")
            item.paragraph_format.left_indent = Cm(1.0)
    if not content.chapters:
        doc.add_paragraph("No lessons in this packet.")
    for chapter in content.chapters:
        heading(chapter.heading, 1)
        for entry in chapter.entries:
            mark = doc.add_paragraph()
            mark.paragraph_format.keep_with_next = True
            run = mark.add_run(entry.marking)
            run.bold = True
            run.font.size = Pt(8.5)
            heading(entry.title, 2)
            facts = doc.add_paragraph(" · ".join(entry.facts))
            facts.runs[0].font.size = Pt(9)
            facts.paragraph_format.keep_with_next = True
            for part in entry.parts:
                heading(part.label, 3)
                for text in part.paragraphs:
                    doc.add_paragraph(text)
            if entry.actions:
                heading("Remedial actions", 3)
                for line in entry.actions:
                    doc.add_paragraph(line, style="List Number")
    out = io.BytesIO()
    doc.save(out)
    return out.getvalue()


def text_size(content: PacketContent) -> int:
    """Characters of the lessons' titles, facts and fields: what the pages are made of."""
    return sum(len(entry.title) + sum(map(len, entry.facts)) + sum(map(len, entry.actions))
               + sum(len(text) for part in entry.parts for text in part.paragraphs)
               for chapter in content.chapters for entry in chapter.entries)


def build(result: Packet, fmt: str, prepared_by: str, today: date) -> bytes:
    """The packet document in ``fmt`` ("pdf" or "docx"). Raises ``ValidationFailed``
    when the packet is too long for one document (``DOCUMENT_TEXT_MAX``)."""
    content = packet_content(result, prepared_by, today)
    if text_size(content) > DOCUMENT_TEXT_MAX:
        raise ValidationFailed({"format": (
            f"This packet is too long for one document ({len(result.lessons)} lessons, "
            f"more than {DOCUMENT_TEXT_MAX:,} characters). Download it as a spreadsheet "
            "or CSV instead.")})
    if fmt == "pdf":
        return packet_pdf(content)
    if fmt == "docx":
        return packet_docx(content)
    raise ValueError(f"Unknown packet document format {fmt!r}")


__all__ = ["FORMATS", "build", "file_name", "packet_content", "withheld_in_words"]

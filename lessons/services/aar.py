"""After-action reports in: read a report (.docx, .pdf, .txt) and propose one draft lesson
per observation found in it.

Pure functions (no Flask, no database): bytes in, a ``Report`` out, or ``Unreadable``
with a message the contributor can act on. The type is told by the content, never by
the file's name: a Word document is a zip holding ``word/document.xml``, a PDF starts
with ``%PDF-`` and parses, text is UTF-8 without NUL characters. Every input is bounded
(bytes, pages, characters, unpacked size, proposals) before it is read further.

Reports are laid out in many ways; the reader understands the common ones:

- headings or labels naming an observation ("Observation 3: Radio failures",
  "Issue:", "Topic:"), with parts labelled "Observation", "Discussion", "Lesson
  learned" / "Conclusion" and "Recommendation" (inline "Label: text" or a label on its
  own line, as in JULLS and issue-discussion-recommendation formats);
- numbered items ("1.", "1)") when the report names no observation otherwise;
- "Sustain" and "Improve" sections (or items labelled so), sustains being best practice;
- Word heading styles: a heading that is not a known section name is an observation's
  title.

The report's event (operation or exercise), date and unit are read from labelled lines
("Exercise: STEADFAST JUPITER 26", "Date: 12 March 2026", "Unit: 1 Signal Regiment").
"""

from __future__ import annotations

import io
import re
import zipfile
from dataclasses import dataclass, field, replace
from datetime import date

from lessons.rules import SHORT_MAX, TEXT_MAX, TITLE_MAX

# Limits (the byte limit is the caller's: a setting).
PAGES_MAX = 300
CHARS_MAX = 1_000_000  # characters of text read from one report
UNPACKED_MAX = 60 * 1024 * 1024  # bytes a Word document may unpack to (zip bombs)
PROPOSALS_MAX = 50
TITLE_CHARS = 75  # a title made from a sentence is cut near here (JULLS advice)

KIND_BEST_PRACTICE = "best_practice"
KIND_LESSON = "lesson"


class Unreadable(ValueError):
    """The report cannot give proposals; ``message`` says why and what to do."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass
class Proposal:
    """One observation found in a report, as a draft lesson's parts."""

    title: str = ""
    observation: str = ""
    discussion: str = ""
    conclusion: str = ""
    recommendation: str = ""
    kind: str = KIND_LESSON
    found_as: str = ""  # where it was found, for the review page ("Observation 3")

    PARTS = ("observation", "discussion", "conclusion", "recommendation")

    def has_text(self) -> bool:
        return any(getattr(self, part) for part in self.PARTS)

    def as_dict(self) -> dict[str, str]:
        return {"title": self.title, "observation": self.observation,
                "discussion": self.discussion, "conclusion": self.conclusion,
                "recommendation": self.recommendation, "kind": self.kind,
                "found_as": self.found_as}

    @classmethod
    def from_dict(cls, data: dict) -> Proposal:
        return cls(**{key: str(data.get(key) or "") for key in (
            "title", "observation", "discussion", "conclusion", "recommendation",
            "found_as")}, kind=str(data.get("kind") or KIND_LESSON))


@dataclass
class Context:
    """What the report says about all its observations."""

    source_event: str = ""
    observed_on: date | None = None
    unit: str = ""


@dataclass
class Report:
    kind: str  # docx, pdf or txt
    context: Context
    proposals: list[Proposal]
    notes: list[str] = field(default_factory=list)  # what was cut or left out


@dataclass
class Line:
    text: str
    heading: bool = False  # a Word heading style
    break_before: bool = False  # a paragraph ends before this line


# --- telling the type by content ---------------------------------------------------------------
def sniff(data: bytes) -> str:
    """``docx``, ``pdf`` or ``txt``; ``Unreadable`` for anything else."""
    if not data or not data.strip():
        raise Unreadable("The file is empty.")
    if data[:1024].lstrip().startswith(b"%PDF-"):
        return "pdf"
    if data.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                names = set(archive.namelist())
        except Exception:  # noqa: BLE001 - BadZipFile, NotImplementedError, OSError...
            raise Unreadable("The file looks like a zip archive but is damaged.") from None
        if "word/document.xml" in names:
            return "docx"
        raise Unreadable("The file is a zip archive, not a Word document. Upload the "
                         "report as .docx, .pdf or plain text.")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise Unreadable("The file is not a Word document (.docx), a PDF or UTF-8 text. "
                         "Older Word files (.doc) need saving as .docx first.") from None
    if "\x00" in text:
        raise Unreadable("The file holds NUL characters: it is not a text file.")
    return "txt"


# --- reading text out --------------------------------------------------------------------------
def _txt_lines(data: bytes) -> list[Line]:
    text = data.decode("utf-8-sig")
    if len(text) > CHARS_MAX:
        raise Unreadable(f"The report holds more than {CHARS_MAX:,} characters; split it.")
    return _plain_lines(text.splitlines())


def _plain_lines(raw: list[str]) -> list[Line]:
    lines: list[Line] = []
    gap = False
    for item in raw:
        text = " ".join(item.split())
        if not text:
            gap = True
            continue
        lines.append(Line(text, break_before=gap))
        gap = False
    return lines


def _docx_lines(data: bytes) -> list[Line]:
    from docx import Document  # imported here: only uploads of Word documents need it

    with zipfile.ZipFile(io.BytesIO(data)) as archive:  # opened once already (sniff)
        if sum(info.file_size for info in archive.infolist()) > UNPACKED_MAX:
            raise Unreadable("The Word document unpacks to more than "
                             f"{UNPACKED_MAX // (1024 * 1024)} MB; it cannot be read here.")
    try:
        document = Document(io.BytesIO(data))
    except Exception:  # noqa: BLE001 - python-docx raises many kinds for a broken file
        raise Unreadable("The Word document cannot be read: it may be damaged or "
                         "protected. Save it again as .docx, or as PDF.") from None
    try:
        return _docx_text(document)
    except Unreadable:
        raise
    except Exception:  # noqa: BLE001 - a malformed part fails deep inside python-docx
        raise Unreadable("The Word document cannot be read: it may be damaged. Save it "
                         "again as .docx, or as PDF.") from None


def _docx_text(document) -> list[Line]:
    """The document's lines. Word numbers its lists itself (the number is not in the
    text), so list paragraphs get theirs back here: "1. …" for numbered lists, "• …"
    for bullets, as a text report would show them."""
    lines: list[Line] = []
    total = 0
    numbers: dict[str, int] = {}
    for paragraph in _docx_paragraphs(document):
        text = " ".join(paragraph.text.split())
        if not text:
            continue
        total += len(text)
        if total > CHARS_MAX:
            raise Unreadable(f"The report holds more than {CHARS_MAX:,} characters; "
                             "split it.")
        style = (paragraph.style.name if paragraph.style is not None else "") or ""
        heading = style.lower().startswith(("heading", "title"))
        properties = paragraph._p.pPr
        listed = style.lower().startswith("list") or (
            properties is not None and properties.numPr is not None)
        if listed and not heading:
            if "bullet" in style.lower():
                text = f"\u2022 {text}"
            else:
                numbers[style] = numbers.get(style, 0) + 1
                text = f"{numbers[style]}. {text}"
        lines.append(Line(text, heading=heading, break_before=True))
    return lines


def _docx_paragraphs(document):
    """Body paragraphs in order, with those of tables (one level deep) in their place;
    a merged cell is read once."""
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    for block in document.element.body.iterchildren():
        tag = block.tag.rsplit("}", 1)[-1]
        if tag == "p":
            yield Paragraph(block, document)
        elif tag == "tbl":
            for row in Table(block, document).rows:
                seen: set[int] = set()
                for cell in row.cells:
                    if id(cell._tc) in seen:
                        continue
                    seen.add(id(cell._tc))
                    yield from cell.paragraphs


PAGE_NUMBER = re.compile(r"^(page\s+)?\d{1,4}(\s*(of|/)\s*\d{1,4})?$", re.IGNORECASE)


def _pdf_lines(data: bytes) -> list[Line]:
    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise Unreadable("The PDF is protected by a password; upload an unprotected "
                             "copy.")
        count = len(reader.pages)
        if count > PAGES_MAX:
            raise Unreadable(f"The PDF has {count:,} pages; at most {PAGES_MAX} are read. "
                             "Split the report.")
        pages: list[list[str]] = []
        total = 0
        for page in reader.pages:
            text = page.extract_text() or ""
            total += len(text)
            if total > CHARS_MAX:
                raise Unreadable(f"The report holds more than {CHARS_MAX:,} characters; "
                                 "split it.")
            pages.append(text.splitlines())
    except Unreadable:
        raise
    except Exception:  # noqa: BLE001 - pypdf fails in many ways on a malformed file
        raise Unreadable("The PDF cannot be read: it may be damaged. Save or export it "
                         "again, or upload the report as .docx or text.") from None
    if not any(line.strip() for page in pages for line in page):
        raise Unreadable("The PDF holds no text: it looks scanned (pictures of pages). "
                         "Upload the original document, or a PDF with text in it.")
    # Lines on most pages (markings, running heads) and page numbers are not the report.
    repeated: set[str] = set()
    if len(pages) >= 2:
        seen: dict[str, int] = {}
        for page in pages:
            for text in {" ".join(line.split()) for line in page}:
                seen[text] = seen.get(text, 0) + 1
        repeated = {text for text, n in seen.items() if n >= max(2, len(pages) // 2 + 1)}
    kept = [line for page in pages for line in page
            if " ".join(line.split()) not in repeated
            and not PAGE_NUMBER.match(" ".join(line.split()))]
    return _plain_lines(kept)


# --- finding observations ----------------------------------------------------------------------
# A word that names an observation, starting a line; its number and title may follow.
# A line naming an observation: the word, its number, then a separator and its title
# ("Observation 3: Radio failures", "Issue:", "Topic - Liaison") or, after a number, a
# space ("Observation 3 Radio failures"). "Finding a frequency took..." is no starter.
STARTER = re.compile(
    r"^(observation|issue|topic|finding)(?:\s*(?:no\.?|#)?\s*(\d{1,3}))?"
    r"(?:\s*[:.)\-\u2013\u2014]\s*(.*)|\s*$|(?<=\d)\s+(.*))$", re.IGNORECASE)
# Part labels: "Discussion: text" or "Discussion" alone.
LABELS = {
    "observation": "observation", "observations": "observation", "issue": "observation",
    "finding": "observation",
    "discussion": "discussion", "analysis": "discussion",
    "conclusion": "conclusion", "lesson learned": "conclusion",
    "lessons learned": "conclusion", "lesson identified": "conclusion",
    "recommendation": "recommendation", "recommendations": "recommendation",
    "recommended action": "recommendation", "way ahead": "recommendation",
    "topic": "title", "title": "title", "subject": "title",
}
LABEL = re.compile(r"^(" + "|".join(sorted((re.escape(k) for k in LABELS), key=len,
                                          reverse=True))
                   + r")\s*(?:\d{1,3}\s*)?(?:[:\-\u2013\u2014]\s*(.*)|$)", re.IGNORECASE)
SUSTAIN = re.compile(r"^(sustains?|strengths?|best practices?|what went well)"
                     r"\s*(?:[:\-\u2013]\s*(.*))?$", re.IGNORECASE)
IMPROVE = re.compile(r"^(improves?|areas? (?:for|to) improve(?:ment)?|improvements?|"
                     r"what (?:did not|didn't) go well|shortfalls?)\s*(?:[:\-\u2013]\s*(.*))?$",
                     re.IGNORECASE)
NUMBERED = re.compile(r"^(?:\(?(\d{1,3})[.)]|\(?([a-z])\))\s+(.+)$", re.IGNORECASE)
BULLET = re.compile(r"^[\u2022\u2023\u25aa\u25cf\u2013\-*\u00b7]\s+(.+)$")
# Headings of the report's other sections: an observation ends where one begins.
OTHER_SECTIONS = re.compile(
    r"^(?:\d{1,2}[.)]?\s*)?(introduction|background|purpose|scope|summary|executive summary|"
    r"references?|annex(?:es)?\b.*|appendix\b.*|distribution|conclusions|"
    r"observations|observations and recommendations|lessons|general|overview|"
    r"after[- ]action report\b.*|aar\b.*|table of contents|contents|points of contact|"
    r"point of contact|signature|approved by\b.*)\s*:?$", re.IGNORECASE)
CONTEXT = re.compile(
    r"^(operation|exercise|event|activity|unit|reporting unit|submitted by unit|"
    r"formation|date|dates|date of event|period)\s*[:\-\u2013]\s*(.+)$", re.IGNORECASE)
MONTHS = {name: i for i, names in enumerate((
    ("jan", "january"), ("feb", "february"), ("mar", "march"), ("apr", "april"),
    ("may",), ("jun", "june"), ("jul", "july"), ("aug", "august"),
    ("sep", "sept", "september"), ("oct", "october"), ("nov", "november"),
    ("dec", "december")), start=1) for name in names}
ISO_DATE = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")
DAY_MONTH = re.compile(r"\b(\d{1,2})(?:st|nd|rd|th)?\s+([A-Za-z]{3,9})\.?,?\s+(\d{4})\b")
MONTH_DAY = re.compile(r"\b([A-Za-z]{3,9})\.?\s+(\d{1,2})(?:st|nd|rd|th)?,?\s+(\d{4})\b")
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'\u201c(])")


def parse_date(text: str) -> date | None:
    """The first date written in ``text`` (2026-03-12, 12 March 2026, March 12, 2026)."""
    candidates: list[tuple[int, date]] = []
    for match in ISO_DATE.finditer(text):
        candidates.append((match.start(), _date(match[1], match[2], match[3])))
    for match in DAY_MONTH.finditer(text):
        month = MONTHS.get(match[2].lower())
        if month:
            candidates.append((match.start(), _date(match[3], month, match[1])))
    for match in MONTH_DAY.finditer(text):
        month = MONTHS.get(match[1].lower())
        if month:
            candidates.append((match.start(), _date(match[3], month, match[2])))
    found = sorted((start, value) for start, value in candidates if value is not None)
    return found[0][1] if found else None


def _date(year: int | str, month: int | str, day: int | str) -> date | None:
    try:
        return date(int(year), int(month), int(day))
    except ValueError:
        return None


def _context(lines: list[Line]) -> Context:
    context = Context()
    for line in lines:
        match = CONTEXT.match(line.text)
        if not match:
            continue
        label, value = match[1].lower(), match[2].strip()
        if label in ("operation", "exercise") and not context.source_event:
            word = label.capitalize()
            named = value if value.lower().startswith(label) else f"{word} {value}"
            context.source_event = named[:SHORT_MAX]
        elif label in ("event", "activity") and not context.source_event:
            context.source_event = value[:SHORT_MAX]
        elif "unit" in label or label == "formation":
            context.unit = context.unit or value[:SHORT_MAX]
        elif label in ("date", "dates", "date of event", "period") and not context.observed_on:
            context.observed_on = parse_date(value)
    return context


def first_sentence(text: str) -> str:
    """A title from text: its first sentence, cut near ``TITLE_CHARS`` characters at a
    word (with an ellipsis) when longer."""
    sentence = SENTENCE_END.split(text.strip(), maxsplit=1)[0].strip()
    sentence = sentence.rstrip(".")
    if len(sentence) <= TITLE_CHARS + 25:
        return sentence
    cut = sentence[:TITLE_CHARS].rsplit(" ", 1)[0].rstrip(",;:")
    return cut + "\u2026"


def _looks_like_title(text: str) -> bool:
    """Short, and not a sentence (a heading rather than the observation itself)."""
    return len(text) <= 120 and not re.search(r"[.!?]$", text) and \
        len(SENTENCE_END.split(text)) == 1


class _Builder:
    """Collects proposals while the lines are read in order."""

    def __init__(self) -> None:
        self.proposals: list[Proposal] = []
        self.current: Proposal | None = None
        self.part = "observation"
        self.paragraphs: dict[str, list[str]] = {}
        self.kind = KIND_LESSON
        # Inside a Sustain or Improve section, where list items are observations.
        self.section_open = False

    def start(self, title: str, found_as: str, kind: str | None = None) -> None:
        self.finish()
        self.current = Proposal(title=title, kind=kind or self.kind, found_as=found_as)
        self.part = "observation"
        self.paragraphs = {}

    def add(self, text: str, part: str | None = None, *, new_paragraph: bool) -> None:
        if self.current is None or not text:
            return
        part = part or self.part
        if part == "title":  # the line after a "Topic" label standing alone
            self.part = "observation"
            if not self.current.title:
                self.current.title = text[:TITLE_MAX]
                return
            part = "observation"
        self.part = part
        chunks = self.paragraphs.setdefault(part, [])
        if chunks and not new_paragraph:
            chunks[-1] = f"{chunks[-1]} {text}"
        else:
            chunks.append(text)

    def has(self, part: str) -> bool:
        return bool(self.paragraphs.get(part))

    def has_any(self) -> bool:
        return any(self.paragraphs.values())

    def finish(self) -> None:
        if self.current is None:
            return
        proposal = self.current
        for part, chunks in self.paragraphs.items():
            setattr(proposal, part, "\n\n".join(chunks))
        self.current, self.paragraphs = None, {}
        if not proposal.title and proposal.observation:
            proposal.title = first_sentence(proposal.observation)
        if not proposal.title:
            for part in Proposal.PARTS:
                if getattr(proposal, part):
                    proposal.title = first_sentence(getattr(proposal, part))
                    break
        if proposal.title or proposal.has_text():
            self.proposals.append(proposal)

    def stop(self) -> None:
        """A section that is not an observation begins: what follows is left out."""
        self.finish()


def _mode(lines: list[Line]) -> str:
    """How this report marks its observations: ``named`` (a starter word or label),
    ``sustain`` (Sustain/Improve sections), ``headings`` (Word headings), ``numbered``."""
    if any(STARTER.match(line.text) for line in lines):
        return "named"
    if any(SUSTAIN.match(line.text) or IMPROVE.match(line.text) for line in lines):
        return "sustain"
    headings = sum(1 for line in lines if line.heading and not OTHER_SECTIONS.match(line.text)
                   and not CONTEXT.match(line.text) and not LABEL.match(line.text))
    numbered = sum(1 for line in lines if NUMBERED.match(line.text) and not line.heading
                   and not OTHER_SECTIONS.match(line.text))
    # Word headings name the observations unless a numbered list under them does (a
    # list inside an observation's discussion is shorter than the run of headings).
    if headings and headings >= numbered:
        return "headings"
    if numbered:
        return "numbered"
    if any(LABEL.match(line.text) for line in lines):
        return "named"
    return "headings"


def find_proposals(lines: list[Line]) -> list[Proposal]:
    """The observations in ``lines``, in report order."""
    mode = _mode(lines)
    build = _Builder()
    counter = 0
    for line in lines:
        text = line.text
        if CONTEXT.match(text) and build.current is None:
            continue
        sustain, improve = SUSTAIN.match(text), IMPROVE.match(text)
        if sustain or improve:
            build.kind = KIND_BEST_PRACTICE if sustain else KIND_LESSON
            rest = ((sustain or improve)[2] or "").strip()
            if rest:  # "Sustain: text" is one item
                counter += 1
                label = "Sustain" if sustain else "Improve"
                build.start("", f"{label} {counter}")
                build.add(rest, "observation", new_paragraph=True)
            else:
                build.stop()
                build.section_open = True
            continue
        if OTHER_SECTIONS.match(text) and (line.heading or len(text) < 60):
            build.stop()
            build.kind, build.section_open = KIND_LESSON, False
            continue
        starter = STARTER.match(text) if mode == "named" else None
        if starter and _starts_item(starter, build):
            counter += 1
            number, rest = starter[2], (starter[3] or starter[4] or "").strip()
            found_as = f"Observation {number or counter}"
            word = starter[1].lower()
            if rest and _looks_like_title(rest) and word != "issue":
                build.start(rest, found_as)
            else:
                build.start("", found_as)
                if word == "topic":  # its title on this line, or on the next
                    build.current.title = rest[:TITLE_MAX]
                    build.part = "observation" if rest else "title"
                elif rest:
                    build.add(rest, "observation", new_paragraph=True)
            continue
        label = LABEL.match(text)
        if label and build.current is not None:
            part = LABELS[label[1].lower()]
            value = (label[2] or "").strip()
            if part == "title":
                build.current.title = build.current.title or value[:TITLE_MAX]
                build.part = "observation" if build.current.title else "title"
            else:
                build.part = part
                build.add(value, part, new_paragraph=True)
            continue
        if label and build.current is None and mode in ("named", "headings", "numbered"):
            part = LABELS[label[1].lower()]
            counter += 1
            build.start("", f"Observation {counter}")
            value = (label[2] or "").strip()
            if part == "title":
                build.current.title = value[:TITLE_MAX]
            else:
                build.add(value, part, new_paragraph=True)
            continue
        if mode == "headings" and line.heading:
            counter += 1
            build.start(text[:TITLE_MAX], f"Heading \u201c{first_sentence(text)}\u201d")
            continue
        numbered, bullet = NUMBERED.match(text), BULLET.match(text)
        if (mode == "numbered" and numbered) or (mode == "sustain" and build.section_open
                                                 and (numbered or bullet)):
            counter += 1
            body = (numbered[3] if numbered else bullet[1]).strip()
            where = ("Item" if mode == "numbered" else
                     "Sustain" if build.kind == KIND_BEST_PRACTICE else "Improve")
            found_as = f"{where} {numbered[1] or counter if numbered else counter}"
            if _looks_like_title(body):
                build.start(body[:TITLE_MAX], found_as)
            else:
                build.start("", found_as)
                build.add(body, "observation", new_paragraph=True)
            continue
        build.add(text, new_paragraph=line.break_before or line.heading
                  or bool(numbered or bullet))
    build.finish()
    return build.proposals


def _starts_item(starter: re.Match, build: _Builder) -> bool:
    """An "Observation:" label fills the current item's observation when that item has
    none yet (its title came from a heading); otherwise it starts the next item."""
    word = starter[1].lower()
    if build.current is None:
        return True
    if word in ("observation", "issue", "finding") and not starter[2]:
        return build.has("observation") or build.has_any()
    return True


def _bounded(proposal: Proposal, number: int, notes: list[str]) -> Proposal:
    changes: dict[str, str] = {}
    if len(proposal.title) > TITLE_MAX:
        changes["title"] = proposal.title[:TITLE_MAX - 1].rsplit(" ", 1)[0] + "\u2026"
    for part in Proposal.PARTS:
        value = getattr(proposal, part)
        if len(value) > TEXT_MAX:
            changes[part] = value[:TEXT_MAX]
            notes.append(f"Proposal {number}: its {part} was cut at {TEXT_MAX:,} characters.")
    return replace(proposal, **changes) if changes else proposal


def read_report(data: bytes, *, max_bytes: int) -> Report:
    """Read ``data`` (an uploaded report) into proposals. Raises ``Unreadable`` for a file
    too large, of another type, damaged, scanned, empty, or with no observation found."""
    if len(data) > max_bytes:
        raise Unreadable(f"The file is {_size(len(data))}; reports of up to "
                         f"{_size(max_bytes)} are read.")
    kind = sniff(data)
    lines = {"docx": _docx_lines, "pdf": _pdf_lines, "txt": _txt_lines}[kind](data)
    if not lines:
        raise Unreadable("The report is empty: no text was found in it.")
    proposals = find_proposals(lines)
    if not proposals:
        raise Unreadable("No observations were found in the report. Muster looks for "
                         "headings or labels such as \u201cObservation\u201d, \u201cIssue\u201d, "
                         "\u201cDiscussion\u201d and \u201cRecommendation\u201d, numbered items, "
                         "or \u201cSustain\u201d and \u201cImprove\u201d sections.")
    if len(proposals) > PROPOSALS_MAX:
        raise Unreadable(f"The report holds {len(proposals)} observations; at most "
                         f"{PROPOSALS_MAX} are proposed at once. Split the report.")
    notes: list[str] = []
    proposals = [_bounded(p, n, notes) for n, p in enumerate(proposals, start=1)]
    return Report(kind=kind, context=_context(lines), proposals=proposals, notes=notes)


def _size(count: int) -> str:
    return f"{count / (1024 * 1024):.1f} MB" if count >= 100 * 1024 else f"{count:,} bytes"


# --- the contributor's choices -----------------------------------------------------------------
class NothingKept(ValueError):
    """Every proposal was dropped, or a merge has nothing before it."""

    def __init__(self, message: str, index: int | None = None) -> None:
        super().__init__(message)
        self.message, self.index = message, index


def combine(items: list[tuple[Proposal, bool, bool]]) -> list[tuple[int, Proposal]]:
    """The drafts to create from (proposal, keep, merge with the previous) in page order:
    dropped ones left out, a merged one's parts added to the kept proposal before it
    (paragraph after paragraph; that one's title and kind stand). Each draft comes with
    the index of the proposal it starts from (for errors)."""
    drafts: list[tuple[int, Proposal]] = []
    for index, (proposal, keep, merge) in enumerate(items):
        if not keep:
            continue
        if merge:
            if not drafts:
                raise NothingKept("There is no kept proposal before this one to merge it "
                                  "with.", index)
            start, previous = drafts[-1]
            # The merged one's title is kept as its first paragraph unless its
            # observation already begins with it (a title made from that sentence).
            head = proposal.title.rstrip("\u2026")
            own = proposal.observation
            if head and not own.startswith(head):
                own = "\n\n".join(v for v in (proposal.title, own) if v)
            joined = {part: "\n\n".join(v for v in (getattr(previous, part),
                                                      own if part == "observation"
                                                      else getattr(proposal, part)) if v)
                      for part in Proposal.PARTS}
            drafts[-1] = (start, replace(previous, **joined))
            continue
        drafts.append((index, proposal))
    if not drafts:
        raise NothingKept("Every proposal is dropped: keep at least one to create drafts.")
    return drafts

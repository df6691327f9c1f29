"""The read-ahead packet as PDF and Word, through HTTP as a planner downloads it.

The PDF is read back with pypdf, page by page: the marking heads and foots every page
(checked by position, not only by presence), "Page N of M" is on each, no line of a
lesson is lost or doubled at a page break, workaround fields are there, and what is not
releasable to the audience (or not visible to the planner) is absent and only counted,
in words, on the cover. The Word file is read back with python-docx: the same words,
the marking in the header and footer, page numbers as fields.
"""

from __future__ import annotations

import io
import re
import time

import pytest
from docx import Document
from pypdf import PdfReader
from sqlalchemy import select

from lessons.extensions import db
from lessons.models import AuditRecord, Exercise
from tests import test_exercises as exercises

people = exercises.people
create = exercises.create

MARKING = "UNCLASSIFIED // REL TO AUS, GBR, USA"
PAGE_LINE = re.compile(r"^Page (\d+) of (\d+)$")
WORDS = ("liaison", "bandwidth", "crypto", "convoy", "refuel", "airspace", "casualty",
         "bridging", "rations", "frequency", "helipad", "checkpoint", "ferry", "medevac",
         "generator", "satellite", "ammunition", "laundry", "signals", "weather")
FIELDS = ("observation", "discussion", "conclusion", "recommendation")
WORKAROUND_FIELDS = ("friction", "workaround", "limits")


def sentences(lesson: int, field: str, count: int) -> list[str]:
    """Long sentences no other lesson or field shares (the numbers and words differ)."""
    out = []
    for n in range(count):
        a, b = WORDS[(lesson * 7 + n) % len(WORDS)], WORDS[(lesson * 3 + n * 5 + 1) % len(WORDS)]
        out.append(f"In serial {lesson}-{field}-{n} the {a} cell waited for the {b} team "
                   f"because the handover checklist number {lesson * 100 + n} was never "
                   f"agreed between the two headquarters before the rehearsal started.")
    return out


def fields_for(number: int, kind: str) -> dict[str, object]:
    """Every text field of ``kind`` filled with distinct sentences."""
    data: dict[str, object] = {key: " ".join(sentences(number, key, 3)) for key in FIELDS}
    data.update(kind=kind, title=f"Packet lesson {number}: {WORDS[number]} handover")
    if kind == "workaround":
        data.update({key: " ".join(sentences(number, key, 2)) for key in WORKAROUND_FIELDS})
        data["permanence"] = "interim"
    return data


@pytest.fixture
def packet_lessons(app, people, create, login_as, make_lesson):
    """An exercise of GBR, USA and AUS with ten accepted lessons (three workarounds) at
    the initial planning conference, releasable to all three and spread over two
    objectives; one more releasable to USA only (withheld from AUS), and one by the USA
    not releasable to GBR (the GBR planner may not know of it)."""
    public_id = create(planners="gb.planner, us.planner")
    gb, us = login_as("gb.planner"), login_as("us.planner")
    with app.app_context():
        exercise = db.session.scalar(select(Exercise).where(Exercise.public_id == public_id))
        objectives = [o.public_id for o in exercise.objectives]
    texts: dict[str, dict[str, object]] = {}
    for number in range(10):
        kind = "workaround" if number % 4 == 1 else "lesson"
        data = fields_for(number, kind)
        # Each lesson's own marking (REL TO AUS, CAN, ...) differs from the packet's.
        lesson = make_lesson("gb.author", "validated", analyst="gb.an",
                             releasable_to=["USA", "AUS", "CAN"], **data)
        texts[lesson.public_id] = data
        exercises.attach(gb, public_id, lesson.public_id, objective=objectives[number % 2])
        exercises.walk(gb, public_id, lesson.public_id, "accepted")
    narrow = make_lesson("gb.author", "validated", analyst="gb.an", releasable_to=["USA"],
                         **fields_for(11, "lesson"))
    exercises.attach(gb, public_id, narrow.public_id, objective=objectives[0])
    exercises.walk(gb, public_id, narrow.public_id, "accepted")
    hidden = make_lesson("us.author", "validated", analyst="us.an",
                         **fields_for(12, "lesson"))
    assert exercises.attach(us, public_id, hidden.public_id).status_code == 302
    exercises.walk(us, public_id, hidden.public_id, "accepted")
    return public_id, texts


def url(public_id: str, fmt: str) -> str:
    return f"/exercises/{public_id}/packet?milestone=initial_planning_conference&format={fmt}"


def normalise(text: str) -> str:
    """Whitespace to single spaces (line ends included)."""
    return " ".join(text.split())


def squeezed(text: str) -> str:
    """Without any whitespace: a line broken after a hyphen ("serial 0-" / "observation")
    reads the same as the sentence written. The documents do not hyphenate words
    (``hyphens: manual``), so no hyphen is added at a line end."""
    return "".join(text.split())


def page_lines(page) -> tuple[list[str], list[tuple[str, float]]]:
    """The page's text lines, and each text run with its height on the page as a share
    of the page height (0 the foot, 1 the head)."""
    height = float(page.mediabox.height)
    runs: list[tuple[str, float]] = []

    def visit(text, cm, tm, font, size):
        if text.strip():
            y = tm[5] * cm[3] + cm[5] if cm else tm[5]
            runs.append((text.strip(), y / height))

    text = page.extract_text(visitor_text=visit)
    return text.splitlines(), runs


def body_text(lines: list[str]) -> str:
    """A page's text without its margin boxes (the marking lines and the page number)."""
    return "\n".join(line for line in lines
                     if line.strip() != MARKING and not PAGE_LINE.match(line.strip()))


def test_the_packet_pdf_keeps_every_line_marks_and_numbers_every_page(app, login_as,
                                                                      packet_lessons):
    public_id, texts = packet_lessons
    started = time.perf_counter()
    response = login_as("gb.planner").get(url(public_id, "pdf"))
    elapsed = time.perf_counter() - started
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    assert response.mimetype == "application/pdf"
    disposition = response.headers["Content-Disposition"]
    assert re.fullmatch(r'attachment; filename="muster-packet-exercise-southern-jackal-2027-'
                        r'initial-planning-conference-\d{4}-\d{2}-\d{2}\.pdf"', disposition)
    assert elapsed < 10, f"the ten-lesson packet took {elapsed:.1f}s"  # about 1s here
    reader = PdfReader(io.BytesIO(response.data))
    pages = len(reader.pages)
    assert pages >= 4
    root = reader.trailer["/Root"]  # tagged, in English, with bookmarks from the headings
    assert "/StructTreeRoot" in root and root["/Lang"] == "en" and reader.outline
    bodies = []
    for number, page in enumerate(reader.pages, start=1):
        lines, runs = page_lines(page)
        stripped = [line.strip() for line in lines]
        assert stripped.count(MARKING) >= 2, (number, stripped)
        assert f"Page {number} of {pages}" in stripped
        # One marking in the top margin, one in the bottom margin (above the number).
        marks = [y for text, y in runs if text == MARKING]
        top, bottom = [y for y in marks if y > 0.92], [y for y in marks if y < 0.08]
        assert len(top) == 1 and len(bottom) == 1, marks
        numbers = [y for text, y in runs if PAGE_LINE.match(text)]
        assert len(numbers) == 1 and numbers[0] < bottom[0]
        body_heights = [y for text, y in runs if y not in (top[0], bottom[0], numbers[0])]
        # Body text stays between the two marking lines: nothing runs under them.
        assert body_heights and all(bottom[0] < y < top[0] for y in body_heights), number
        bodies.append(body_text(lines))
    whole = normalise("\n".join(bodies))
    every = squeezed(whole)
    for data in texts.values():
        for key in FIELDS + WORKAROUND_FIELDS:
            for sentence in re.findall(r"[^.]+\.", str(data.get(key, ""))):
                assert every.count(squeezed(sentence)) == 1, sentence
    cover = normalise(bodies[0])
    assert "Read-ahead packet" in cover and "Exercise SOUTHERN JACKAL 2027" in cover
    assert "Initial planning conference" in cover and "Audience AUS, GBR, USA" in cover
    assert "This packet holds 10 lessons releasable to every nation in the audience." in cover
    assert ("1 further lesson attached at this milestone is withheld from this packet "
            "because it is not releasable to every nation in the audience. Missing release: "
            "AUS (1 lesson).") in cover
    assert "Contents" in normalise(bodies[1])
    # Workaround fields, under their own headings.
    for label in ("Friction", "What was done", "Limits", "Permanence",
                  "Interim: to be replaced by a lasting fix"):
        assert label in whole
    assert whole.count("Objective 1: Exchange liaison officers on day one") == 2  # contents
    # What the audience may not read, and what the planner may not see, are absent.
    for number in (11, 12):
        assert f"Packet lesson {number}" not in whole
        assert sentences(number, "observation", 1)[0][:40] not in whole


def test_no_page_between_the_cover_and_the_last_is_half_empty(app, login_as, packet_lessons):
    """Measure: the characters of body text on a page (margin boxes left out, whitespace
    removed). Every page but the cover and the last holds at least 40% of the fullest
    page's count: lessons flow on, headings are not left alone, and there is no page
    break per lesson."""
    public_id, _ = packet_lessons
    reader = PdfReader(io.BytesIO(login_as("gb.planner").get(url(public_id, "pdf")).data))
    sizes = [len("".join(body_text(page_lines(page)[0]).split())) for page in reader.pages]
    fullest = max(sizes)
    for number, size in enumerate(sizes[1:-1], start=2):
        assert size >= 0.4 * fullest, (number, sizes)


def test_headings_are_never_the_last_line_of_a_page(app, login_as, packet_lessons):
    public_id, texts = packet_lessons
    reader = PdfReader(io.BytesIO(login_as("gb.planner").get(url(public_id, "pdf")).data))
    headings = {"Observation", "Discussion", "Conclusion", "Recommendation", "Friction",
                "What was done", "Limits", "Permanence"}
    headings |= {str(data["title"]) for data in texts.values()}
    for page in reader.pages[1:]:
        lines = [line.strip() for line in body_text(page_lines(page)[0]).splitlines()
                 if line.strip()]
        assert lines[-1] not in headings and not lines[-1].startswith("Objective "), lines[-3:]


def test_the_packet_docx_holds_the_same_words(app, login_as, packet_lessons):
    public_id, texts = packet_lessons
    response = login_as("gb.planner").get(url(public_id, "docx"))
    assert response.status_code == 200
    assert response.mimetype == ("application/vnd.openxmlformats-officedocument."
                                 "wordprocessingml.document")
    assert re.search(r'filename="muster-packet-exercise-southern-jackal-2027-initial-planning-'
                     r'conference-\d{4}-\d{2}-\d{2}\.docx"',
                     response.headers["Content-Disposition"])
    document = Document(io.BytesIO(response.data))
    paragraphs = [p.text for p in document.paragraphs]
    whole = normalise("\n".join(paragraphs))
    for data in texts.values():
        assert whole.count(str(data["title"])) == 2  # contents and heading
        for key in FIELDS + WORKAROUND_FIELDS:
            for sentence in re.findall(r"[^.]+\.", str(data.get(key, ""))):
                assert whole.count(normalise(sentence)) == 1, sentence
    for label in ("Friction", "What was done", "Limits", "Permanence"):
        assert label in paragraphs
    assert "Audience: AUS, GBR, USA" in paragraphs
    assert ("1 further lesson attached at this milestone is withheld from this packet "
            "because it is not releasable to every nation in the audience. Missing release: "
            "AUS (1 lesson).") in paragraphs
    for number in (11, 12):
        assert f"Packet lesson {number}" not in whole
    section = document.sections[0]
    assert [p.text for p in section.header.paragraphs] == [MARKING]
    footer = [p.text for p in section.footer.paragraphs]
    assert footer[0] == MARKING and re.fullmatch(r"Page \d+ of \d+", footer[1])
    xml = section.footer._element.xml
    assert "PAGE" in xml and "NUMPAGES" in xml
    # Headings stay with what follows them.
    for paragraph in document.paragraphs:
        if paragraph.style.name.startswith("Heading"):
            assert paragraph.paragraph_format.keep_with_next, paragraph.text


def test_an_audience_narrowed_to_gbr_and_usa_takes_the_narrow_lesson_in(app, login_as,
                                                                        packet_lessons):
    public_id, _ = packet_lessons
    response = login_as("gb.planner").get(url(public_id, "pdf") + "&audience=GBR,USA")
    reader = PdfReader(io.BytesIO(response.data))
    whole = normalise("\n".join(page.extract_text() for page in reader.pages))
    assert "UNCLASSIFIED // REL TO GBR, USA" in whole
    assert "Packet lesson 11" in whole and "Packet lesson 12" not in whole
    assert "No lesson is withheld" in whole


def test_who_may_not_see_the_exercise_gets_404_and_downloads_are_audited(app, login_as,
                                                                         packet_lessons):
    public_id, _ = packet_lessons
    french = login_as("fr.planner")
    for fmt in ("pdf", "docx"):
        assert french.get(url(public_id, fmt)).status_code == 404
    with app.app_context():
        assert db.session.scalars(select(AuditRecord).where(
            AuditRecord.action == "export")).all() == []
    gb = login_as("gb.planner")
    for fmt in ("pdf", "docx"):
        assert gb.get(url(public_id, fmt)).status_code == 200
    with app.app_context():
        rows = db.session.execute(select(AuditRecord.comment, Exercise.public_id).join(
            Exercise, AuditRecord.exercise_id == Exercise.id).where(
            AuditRecord.action == "export").order_by(AuditRecord.id)).all()
    assert [tuple(row) for row in rows] == [
        ("read-ahead packet initial_planning_conference for AUS, GBR, USA: 10 lessons, pdf",
         public_id),
        ("read-ahead packet initial_planning_conference for AUS, GBR, USA: 10 lessons, docx",
         public_id)]


def test_the_packet_page_links_the_documents_and_shows_workaround_fields(app, login_as,
                                                                          packet_lessons):
    public_id, texts = packet_lessons
    html = login_as("gb.planner").get(
        f"/exercises/{public_id}/packet?milestone=initial_planning_conference").get_data(
        as_text=True)
    assert "format=pdf" in html and "format=docx" in html
    text = exercises.text_of(html)
    for data in texts.values():
        if data["kind"] == "workaround":
            for key in WORKAROUND_FIELDS:
                assert sentences(int(str(data["title"]).split()[2].rstrip(":")), key, 1)[0] \
                    in " ".join(text.split())
    for label in ("Friction", "What was done", "Limits", "Permanence"):
        assert f">{label}<" in html


def test_an_empty_packet_is_still_a_document(app, people, create, login_as):
    """A milestone with nothing accepted yet: a cover and a contents page saying so."""
    public_id = create()
    gb = login_as("gb.planner")
    response = gb.get(url(public_id, "pdf"))
    assert response.status_code == 200
    reader = PdfReader(io.BytesIO(response.data))
    whole = normalise(" ".join(page.extract_text() for page in reader.pages))
    assert "This packet holds 0 lessons" in whole and "No lessons in this packet." in whole
    assert f"Page {len(reader.pages)} of {len(reader.pages)}" in whole
    document = Document(io.BytesIO(gb.get(url(public_id, "docx")).data))
    assert "No lessons in this packet." in [p.text for p in document.paragraphs]


def test_awkward_text_is_printed_as_text(app, people, create, login_as, make_lesson):
    """Markup, long unbroken words and line breaks in a lesson reach both documents as
    the words written (nothing interpreted, nothing fetched, nothing lost)."""
    public_id = create()
    gb = login_as("gb.planner")
    long_word = "x" * 300
    lesson = make_lesson(
        "gb.author", "validated", analyst="gb.an", releasable_to=["USA", "AUS"],
        title="<b>Bold</b> & <img src='http://example.invalid/a.png'>",
        observation=f"First line.\nSecond line with {long_word} in it.\n\nÜber café, 日本.")
    exercises.attach(gb, public_id, lesson.public_id)
    exercises.walk(gb, public_id, lesson.public_id, "accepted")
    response = gb.get(url(public_id, "pdf"))
    assert response.status_code == 200
    # pypdf reads this font subset's custom encoding as two bytes a character (poppler
    # reads it right): the NULs it leaves between letters are its own.
    every = squeezed(" ".join(page.extract_text() for page in PdfReader(
        io.BytesIO(response.data)).pages).replace("\x00", ""))
    assert squeezed("<b>Bold</b> & <img src='http://example.invalid/a.png'>") in every
    assert long_word in every and "Secondlinewith" in every and "Übercafé" in every
    paragraphs = [p.text for p in Document(io.BytesIO(gb.get(url(public_id, "docx")).data)
                                           ).paragraphs]
    assert "First line." in paragraphs and f"Second line with {long_word} in it." in paragraphs


def test_a_packet_too_long_for_one_document_is_refused_in_words(app, login_as, packet_lessons,
                                                                monkeypatch):
    """Past ``DOCUMENT_TEXT_MAX`` characters a document would take longer to make than a
    request may: a clear 422 pointing to the spreadsheet, nothing audited."""
    from lessons.services import packet_documents

    public_id, _ = packet_lessons
    monkeypatch.setattr(packet_documents, "DOCUMENT_TEXT_MAX", 5_000)
    gb = login_as("gb.planner")
    for fmt in ("pdf", "docx"):
        response = gb.get(url(public_id, fmt))
        assert response.status_code == 422
        text = normalise(exercises.text_of(response.get_data(as_text=True)))
        assert "too long for one document" in text and "spreadsheet" in text
    with app.app_context():
        assert db.session.scalars(select(AuditRecord).where(
            AuditRecord.action == "export")).all() == []

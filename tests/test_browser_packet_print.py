"""The packet page printed from a real Chromium (A4, the browser's own print layout).

The printed page follows the rules of the packet documents: the marking bars head and
foot every page without covering a line (every sentence of every lesson is found once
in the printed text, and all body text lies between the two bars), "Page N of M" is in
the page margin, headings are not left at the foot of a page, lessons flow on rather
than one to a page, and a workaround's fields are printed. Read back with pypdf.
"""

from __future__ import annotations

import re

import pytest
from pypdf import PdfReader

from tests import browser
from tests import test_exercises as exercises
from tests import test_packet_documents as documents

people = exercises.people
create = exercises.create
packet_lessons = documents.packet_lessons

pytestmark = pytest.mark.browser

MARKING = documents.MARKING
LESSON_MARKING = "UNCLASSIFIED // REL TO AUS, CAN, GBR, USA"
LABELS = {"Observation", "Discussion", "Conclusion", "Recommendation", "Friction",
          "Limits", "Permanence"}


def printed(page, path: str, folder) -> PdfReader:
    page.goto(path)
    page.emulate_media(media="print")
    target = folder / "packet.pdf"
    page.pdf(path=str(target), format="A4", prefer_css_page_size=True)
    return PdfReader(str(target))


def runs_of(page) -> tuple[str, list[tuple[str, float]]]:
    """The page's text, and its text runs with their height as a share of the page's."""
    height = float(page.mediabox.height)
    runs: list[tuple[str, float]] = []

    def visit(text, cm, tm, font, size):
        if text.strip():
            runs.append((text.strip(), (tm[5] * cm[3] + cm[5]) / height))

    return page.extract_text(visitor_text=visit), runs


def test_the_printed_packet_page_keeps_every_line_clear_of_the_marking(
        open_as, open_pages, packet_lessons, tmp_path):
    public_id, texts = packet_lessons
    with browser.saved_on_failure(open_pages, tmp_path):
        planner = open_as("gb.planner")
        reader = printed(planner, f"/exercises/{public_id}/packet?milestone="
                                  "initial_planning_conference", tmp_path)
    pages = len(reader.pages)
    assert pages >= 3
    bodies, sizes = [], []
    for number, page in enumerate(reader.pages, start=1):
        text, runs = runs_of(page)
        squeezed = documents.squeezed(text)
        assert squeezed.count(documents.squeezed(MARKING)) >= 2, number
        assert f"Page{number}of{pages}" in squeezed, number
        marks = [y for run, y in runs if run == MARKING]
        top, bottom = max(marks), min(marks)
        assert top > 0.9 and bottom < 0.1, marks
        body = [(run, y) for run, y in runs if bottom < y < top]
        outside = [run for run, y in runs if not bottom <= y <= top
                   and run != MARKING and not re.fullmatch(r"Page|of|\d+", run)]
        assert not outside, (number, outside)  # nothing runs under or over the bars
        foot = min(y for _, y in body)
        lowest = [run for run, y in body if y - foot < 0.005]  # the page's last line
        if number < pages:
            # Not a field's label, an objective, nor a lesson's marking, title or facts
            # (whose last is the purpose) without the text that follows them.
            for run in lowest:
                assert run not in LABELS | {LESSON_MARKING, "Training objective"}, (number, run)
                assert not run.startswith(("Objective", "Packet lesson")), (number, run)
        own = squeezed.replace(documents.squeezed(MARKING), "")
        own = re.sub(rf"Page{number}of{pages}", "", own)
        bodies.append(own)
        sizes.append(len(own))
    every = "".join(bodies)
    for data in texts.values():
        for key in documents.FIELDS + documents.WORKAROUND_FIELDS:
            for sentence in re.findall(r"[^.]+\.", str(data.get(key, ""))):
                assert every.count(documents.squeezed(sentence)) == 1, sentence
    assert "Whatwasdone" in every and "Friction" in every
    # Lessons flow on: no page between the first and the last under 40% of the fullest.
    for number, size in enumerate(sizes[1:-1], start=2):
        assert size >= 0.4 * max(sizes), (number, sizes)
    # Hidden or withheld lessons are not printed; the withheld one is counted in words.
    assert "Packetlesson11" not in every and "Packetlesson12" not in every
    assert "1furtherlessonattachedatthismilestoneiswithheld" in every

""""Did you mean": spelling corrections drawn only from lessons the user may see.

Corrections come from the index's own terms (stemmed, spelling-folded), so no second
field of raw words has to be written with every lesson. A stem is not a word to show,
so the word offered is read back from the text of a lesson the user may see that holds
it: a word that occurs only in hidden lessons can never be offered.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from itertools import islice

from sqlalchemy import select
from whoosh.searching import Searcher
from whoosh.support.levenshtein import levenshtein

from lessons.extensions import db
from lessons.models import Lesson
from lessons.search import masks
from lessons.search.schema import CONTENT, CONTENT_PARTS, TITLE, text_analyzer

MAX_EDITS = 2
MIN_LENGTH = 4  # shorter words are mostly acronyms, and two edits reach half the dictionary
LONG_WORD = 6  # words this long get MAX_EDITS edits; shorter ones one
PREFIX = 1  # letters a correction shares with the word (few typos change the first)
MAX_CANDIDATES = 100  # dictionary words weighed per word and field, at most
_SURFACE_TRIES = 5  # lessons read for the word as written (the index's may be stale)
_analyzer = text_analyzer()


def _stems(word: str) -> list[str]:
    return [token.text for token in _analyzer(word)]


def correct(searcher: Searcher, leaves: list[masks.Leaf], visible: list[int], text: str,
            words: list[str], total_of: Callable[[str], int], total: int) -> str:
    """``text`` with unknown words replaced by the closest visible ones, if the result
    finds more lessons than ``total`` (``total_of`` counts a query as the search would);
    else ``""``."""

    def visible_docs(stem: str) -> list[int]:
        return [(leaf.term(CONTENT, stem) | leaf.term(TITLE, stem)) & seen
                for leaf, seen in zip(leaves, visible, strict=True)]

    reader = searcher.reader()
    corrected = text
    changed = False
    for typed in dict.fromkeys(words):
        word = typed.lower()
        stems = _stems(word)
        if (not word.isalpha() or len(word) < MIN_LENGTH or len(stems) != 1
                or masks.popcount(visible_docs(stems[0]))):
            continue  # not a word, a stop word, or already found
        stem = stems[0]
        ranked = []
        edits = MAX_EDITS if len(stem) >= LONG_WORD else 1
        for field in (CONTENT, TITLE):
            for candidate in islice(reader.terms_within(field, stem, edits, prefix=PREFIX),
                                    MAX_CANDIDATES):
                candidate = candidate.decode() if isinstance(candidate, bytes) else candidate
                docs = visible_docs(candidate)
                count = masks.popcount(docs)
                if candidate != stem and count:
                    ranked.append((levenshtein(candidate, stem), -count, candidate, docs))
        if not ranked:
            continue
        _, _, best, docs = min(ranked, key=lambda item: item[:3])
        shown = _surface_word(leaves, docs, best, word)
        if shown:
            corrected = re.sub(rf"(?<![\w:]){re.escape(typed)}(?!\w)", shown, corrected,
                               count=1)
            changed = True
    if not changed or corrected == text:
        return ""
    return corrected if total_of(corrected) > total else ""


def _surface_word(leaves: list[masks.Leaf], docs: list[int], stem: str, typed: str) -> str:
    """The word as written in a visible lesson holding ``stem``, closest to ``typed``:
    from the lesson with the lowest id that has it (not the first by document number,
    which merges change)."""
    holding = sorted({int(lesson_id) for leaf, mask in zip(leaves, docs, strict=True) if mask
                      for lesson_id in leaf.lesson_ids()[masks.mask_to_ids(mask)]})
    for lesson_id in holding[:_SURFACE_TRIES]:
        lesson = db.session.scalar(select(Lesson).where(Lesson.id == lesson_id))
        if lesson is None:
            continue
        text = "\n".join([lesson.title, *(getattr(lesson, name) or "" for name in CONTENT_PARTS)])
        forms = {text[t.startchar:t.endchar].lower()
                 for t in _analyzer(text, chars=True) if t.text == stem}
        if forms:
            return min(forms, key=lambda form: (levenshtein(form, typed), form))
    return ""

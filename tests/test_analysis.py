"""Indexing's one-loop analysis (``TextAnalyzer.index_positions`` through
``TermPositions``) gives exactly what Whoosh's filter chain gives: the same terms, counts,
weights and encoded positions, so phrase search and ranking cannot tell them apart."""

from __future__ import annotations

import json
import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from whoosh.formats import Positions

from lessons.search.schema import TermPositions, build_schema, text_analyzer
from tests.test_exchange import NASA

TRICKY = [
    "",
    "the",
    "A a a",
    "The defence of the organisation's centre, and the refuelling.",
    "Of the LNOs: a U.S. liaison in the J-3 cell; us and US and the US's.",
    "I/O at 3.5 GHz — 2x faster; colour, COLOUR, Colour! naïve café Ærø",
    "and and and convoy and convoy convoy",
    "x y z mission network mission-network mission_network",
    "Don\u2019t wait: it\u2019s the co-ordination. e.g. i.e. etc. 1st 2nd",
    "\u0646\u0638\u0627\u0645 \u0627\u062a\u0635\u0627\u0644\u0627\u062a radio "
    "\u0420\u0430\u0434\u0438\u043e",
]


def both(text: str, boost: float = 1.0) -> tuple[list, list]:
    analyzer = text_analyzer()
    fast = list(TermPositions(field_boost=boost).word_values(text, analyzer, mode="index"))
    chain = list(Positions(field_boost=boost).word_values(text, analyzer, mode="index"))
    return fast, chain


@pytest.mark.parametrize("text", TRICKY)
def test_the_one_loop_path_indexes_what_the_filter_chain_does(text):
    fast, chain = both(text, boost=3.0)
    assert fast == chain


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(list("aAeoOusTthr'\u2019._- \n,Éé1") + [
    " the ", " of ", " defence ", " colour ", " a ", " us ", " I "]), max_size=80))
def test_the_one_loop_path_agrees_on_any_text(pieces):
    fast, chain = both("".join(pieces))
    assert fast == chain


def test_the_one_loop_path_agrees_on_real_lessons():
    if not NASA.exists():
        pytest.skip(f"No NASA LLIS data: {NASA.name} is not in the shared data folder")
    with NASA.open(encoding="utf-8") as lines:
        records = [json.loads(line) for _, line in zip(range(300), lines, strict=False)]
    for record in records:
        text = "\n\n".join(str(v) for v in record.values() if isinstance(v, str))
        fast, chain = both(text)
        assert fast == chain


def test_indexing_takes_the_one_loop_path_and_queries_keep_the_chain(monkeypatch):
    schema = build_schema()
    analyzer = schema["content"].analyzer
    called: list[str] = []
    real = type(analyzer).index_positions

    def noting(self, value):
        called.append(value)
        return real(self, value)

    monkeypatch.setattr(type(analyzer), "index_positions", noting)
    assert [t for t, *_ in schema["content"].index("Refuelling convoys")] == [
        b"refuel", b"convoi"]
    assert called == ["Refuelling convoys"]
    assert [t.text for t in analyzer("Refuelling the convoys", mode="query")] == [
        "refuel", "convoi"]
    assert called == ["Refuelling convoys"]


def test_a_pickled_schema_still_indexes_the_same(tmp_path):
    """An index keeps its schema pickled; reopened, the analyzer's loop still works."""
    schema = pickle.loads(pickle.dumps(build_schema()))
    text = "The defence of the organisation's centre"
    assert (list(schema["title"].format.word_values(text, schema["title"].analyzer))
            == list(Positions().word_values(text, text_analyzer(), mode="index")))

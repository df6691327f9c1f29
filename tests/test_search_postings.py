"""Postings and positions read straight from Whoosh's block format, and phrases checked
on them, agree with Whoosh's own reading and matching."""

from __future__ import annotations

import random

import numpy as np
import pytest
from whoosh import index as whoosh_index
from whoosh.query import Phrase

from lessons.search import masks, postings
from lessons.search.schema import build_schema

WORDS = [f"w{k}" for k in range(400)]


def _text(r: random.Random, n: int) -> str:
    words = [WORDS[min(int(r.paretovariate(0.6)), len(WORDS)) - 1] for _ in range(30)]
    if n in (10, 2500):
        words += ["twice", "twice"]
    if n == 42:
        words.append("zorbix")
    return " ".join(words)


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory):
    """Two segments of 3,000 and 500 documents: common words (every block full, one-byte
    gaps), rarer ones (gaps over 255), words repeated in a document (weights above 1),
    words in one document (inlined) and in two (a short last block of equal weights)."""
    r = random.Random(7)
    path = tmp_path_factory.mktemp("postings")
    ix = whoosh_index.create_in(str(path), build_schema())
    for first, last in ((0, 3000), (3000, 3500)):
        writer = ix.writer()
        for n in range(first, last):
            content = _text(r, n)
            writer.add_document(lesson_id=str(n), content=content, tag="t" + str(n % 7),
                                title=" ".join(content.split()[:5]))
        writer.commit(merge=False)
    yield ix
    ix.close()


@pytest.fixture(scope="module")
def searcher(index):
    with index.searcher() as searcher:
        assert len(searcher.leaf_searchers()) == 2
        yield searcher


@pytest.fixture(scope="module")
def reader(searcher):
    return searcher.leaf_searchers()[0][0].reader()


def _whoosh(reader, fieldname: str, text: bytes) -> tuple[list[int], list[float]]:
    matcher = reader.postings(fieldname, text)
    ids, weights = [], []
    while matcher.is_active():
        ids.append(matcher.id())
        weights.append(matcher.weight())
        matcher.next()
    return ids, weights


@pytest.mark.parametrize("fieldname", ["content", "title", "tag", "lesson_id"])
def test_every_term_reads_as_whoosh_reads_it(reader, fieldname: str) -> None:
    terms = list(reader.lexicon(fieldname))
    assert terms
    for text in terms:
        found = postings.read(reader, fieldname, text)
        ids, weights = _whoosh(reader, fieldname, text)
        assert found.ids.tolist() == ids, text
        assert np.array_equal(found.weights, np.asarray(weights, dtype=np.float64)), text
        assert postings.read(reader, fieldname, text, weights=False).ids.tolist() == ids


def test_the_test_segment_has_the_layouts_it_claims(reader) -> None:
    common = postings.read(reader, "content", "w0")
    assert len(common) > 1000 and (common.weights > 1).any()
    assert (np.diff(postings.read(reader, "content", "w150").ids) > 255).any()
    assert postings.read(reader, "content", "twice").weights.tolist() == [2.0, 2.0]
    assert postings.read(reader, "content", "zorbix").ids.tolist() == [42]


def test_a_word_not_in_the_segment_has_no_postings(reader) -> None:
    assert len(postings.read(reader, "content", "absent")) == 0
    assert len(postings.read(reader, "nosuchfield", "w0")) == 0


def _whoosh_positions(reader, text: str, docs: set[int]) -> list[tuple[int, int]]:
    if ("content", text) not in reader:
        return []
    matcher = reader.postings("content", text)
    found = []
    while matcher.is_active():
        if matcher.id() in docs:
            found += [(matcher.id(), where) for where in matcher.value_as("positions")]
        matcher.next()
    return found


@pytest.mark.parametrize("text", ["w0", "w3", "w40", "w150", "twice", "zorbix", "absent"])
def test_positions_are_whoosh_positions_for_the_documents_asked(reader, text: str) -> None:
    r = random.Random(text)
    for docs in (range(3000), r.sample(range(3000), 300), [10, 42, 2500], []):
        wanted = np.asarray(sorted(docs), dtype=np.int64)
        doc_of, where = postings.positions(reader, "content", text, wanted)
        assert list(zip(doc_of.tolist(), where.tolist(), strict=True)) == \
            _whoosh_positions(reader, text, set(docs)), docs


def _phrases() -> list[list[str]]:
    """Stretches of the indexed text (regenerated from the fixture's seed), pairs of
    common words that may or may not stand together, repeated words, absent words."""
    r = random.Random(3)
    generator = random.Random(7)
    texts = [_text(generator, n) for n in range(3500)]
    phrases = []
    for _ in range(30):
        words = r.choice(texts).split()
        start = r.randrange(len(words) - 3)
        phrases.append(words[start:start + r.choice((2, 3, 4))])
    phrases += [[r.choice(WORDS[:50]), r.choice(WORDS[:50])] for _ in range(12)]
    phrases += [["w0", "w0"], ["twice", "twice"], ["w1", "absent"], ["zorbix", "zorbix"]]
    return phrases


def test_phrases_match_what_whoosh_matches(searcher) -> None:
    leaves = masks.leaves(searcher, "test")
    r = random.Random(5)
    matched = 0
    for words in _phrases():
        query = Phrase("content", words)
        expected = set(query.matcher(searcher, searcher.boolean_context()).all_ids())
        within = [r.getrandbits(leaf.masks.size) for leaf in leaves]
        found, found_within = set(), set()
        for leaf, scope in zip(leaves, within, strict=True):
            found |= {leaf.offset + n for n in masks.mask_to_ids(leaf.query(query))}
            found_within |= {leaf.offset + n
                             for n in masks.mask_to_ids(leaf.query(query, scope))}
        assert found == expected, words
        in_scope = {leaf.offset + n for leaf, scope in zip(leaves, within, strict=True)
                    for n in masks.mask_to_ids(scope)}
        assert found_within == expected & in_scope, words
        matched += bool(expected)
    assert matched > 30  # most phrases occur, so the check is not vacuous


SNIPPET_TEXTS = [
    "The liaison officers' radios were refuelled at the harbour. The US team's "
    "organisation chart was out of date; A new organization chart (v2.1) was issued.",
    "Défense and defence: co-ordination of the LNO cell, the LO and the exchange officer "
    "… whose report was late. " * 30,
    "No match here at all, only other words of staff writing.",
    "I was a team of one. Us and them; it is what it is. E.g. A.B.C. don't fly",
    "",
]
SNIPPET_TERMS = [frozenset(words) for words in (
    {"radio", "refuel", "organ"}, {"defens", "liaison", "offic"}, {"us", "team"},
    {"it", "i"}, {"chart", "report", "late"}, {"absent"})]


@pytest.mark.parametrize("text", SNIPPET_TEXTS)
def test_snippets_are_what_whoosh_highlights(text: str) -> None:
    from whoosh import highlight

    from lessons.search import query
    from lessons.search.schema import text_analyzer

    for terms in SNIPPET_TERMS:
        # The formatter numbers terms as it meets them: the same one for both.
        expected = highlight.highlight(text, terms, text_analyzer(), query._fragmenter,
                                       query._formatter, top=2) if text else ""
        assert query.snippet(text, terms) == expected, (text[:40], terms)

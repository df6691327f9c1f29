"""Postings read straight from Whoosh's block format agree with Whoosh's own reading."""

from __future__ import annotations

import random

import numpy as np
import pytest
from whoosh import index as whoosh_index

from lessons.search import postings
from lessons.search.schema import build_schema

WORDS = [f"w{k}" for k in range(400)]


@pytest.fixture(scope="module")
def reader(tmp_path_factory: pytest.TempPathFactory):
    """One segment of 3,000 documents: common words (every block full, one-byte gaps),
    rarer ones (gaps over 255), words repeated in a document (weights above 1), words in
    one document (inlined) and in two (a short last block of equal weights)."""
    r = random.Random(7)
    path = tmp_path_factory.mktemp("postings")
    ix = whoosh_index.create_in(str(path), build_schema())
    writer = ix.writer()
    for n in range(3000):
        words = [WORDS[min(int(r.paretovariate(0.6)), len(WORDS)) - 1] for _ in range(30)]
        if n in (10, 2500):
            words += ["twice", "twice"]
        if n == 42:
            words.append("zorbix")
        writer.add_document(lesson_id=str(n), content=" ".join(words), tag="t" + str(n % 7),
                            title=" ".join(words[:5]))
    writer.commit(merge=False)
    with ix.searcher() as searcher:
        yield searcher.reader()
    ix.close()


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

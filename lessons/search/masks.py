"""Document sets as bit masks, kept per index segment: the visibility filter, totals and
facet counts without scoring or a per-query facet pass.

Whoosh segments never change once written (only their deletions grow), so what is
derived from a segment's postings (the documents holding a term, every facet value's
documents) is computed once per segment and process and reused by every query until the
segment is merged away. A query's documents are then a few big-integer ANDs and ORs,
a total is a popcount, and a facet count is one AND and a popcount per value. Python's
integers do this in C, so a 100,000-document segment costs microseconds per value.

Everything is per segment: a mask's bit ``n`` is the segment's document ``n``; the
searcher's offsets turn them into the searcher's global numbers where Whoosh needs them.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
from whoosh.query import And, AndNot, Every, Not, NullQuery, Or, Phrase, Query, Term
from whoosh.searching import Searcher

from lessons.search import postings
from lessons.search.postings import Postings
from lessons.search.schema import CONTENT, FACETS, FILES, TITLE

# Masks of arbitrary terms kept per segment (facet values are always kept).
TERM_MASKS_KEPT = 2048
# Postings of the text fields' words kept per process, most recently used first: the
# masks and the ranking of a query read them once, and the common words of the next
# queries are read from memory (a word in every other lesson of 100,000 takes 400 kB).
POSTINGS_KEPT_BYTES = 40 * 2**20
CACHED_POSTINGS_FIELDS = frozenset({TITLE, CONTENT, FILES})
# Guards every change to the caches shared by a process's threads (``_segments``, a
# segment's dictionaries, the postings): a dictionary another thread iterates while
# one adds to it fails that iteration. What is computed for them is computed outside.
_lock = threading.Lock()


def ids_to_mask(ids: Iterable[int] | np.ndarray, size: int) -> int:
    present = np.zeros(size, dtype=bool)
    present[ids if isinstance(ids, np.ndarray) else np.fromiter(ids, dtype=np.int64)] = True
    return int.from_bytes(np.packbits(present, bitorder="little").tobytes(), "little")


def term_mask(reader, fieldname: str, text: str | bytes, size: int) -> int:
    """The mask of a segment's documents holding the term (deleted ones included)."""
    return ids_to_mask(postings.read(reader, fieldname, text, weights=False).ids, size)


class _PostingsCache:
    """Recently read postings of text-field words, by segment, within a byte budget."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.used = 0
        self.entries: OrderedDict[tuple[str, str, str], Postings] = OrderedDict()

    def get(self, key: tuple[str, str, str]) -> Postings | None:
        with _lock:
            found = self.entries.get(key)
            if found is not None:
                self.entries.move_to_end(key)
            return found

    def put(self, key: tuple[str, str, str], value: Postings) -> None:
        size = value.ids.nbytes + value.weights.nbytes
        if size > self.budget // 4:
            return  # one huge list would push out everything else
        with _lock:
            old = self.entries.pop(key, None)
            if old is not None:
                self.used -= old.ids.nbytes + old.weights.nbytes
            self.entries[key] = value
            self.used += size
            while self.used > self.budget and self.entries:
                _, dropped = self.entries.popitem(last=False)
                self.used -= dropped.ids.nbytes + dropped.weights.nbytes


_postings = _PostingsCache(POSTINGS_KEPT_BYTES)


def mask_to_ids(mask: int) -> list[int]:
    data = np.frombuffer(mask.to_bytes((mask.bit_length() + 7) >> 3, "little"), np.uint8)
    return np.flatnonzero(np.unpackbits(data, bitorder="little")).tolist()


@dataclass
class SegmentMasks:
    """What one segment's postings give, computed once per process."""

    size: int
    terms: OrderedDict[tuple[str, str], int] = field(default_factory=OrderedDict)
    facets: dict[str, dict[str, int]] = field(default_factory=dict)
    lengths: dict[str, np.ndarray] = field(default_factory=dict)  # words per doc
    dates: list[int] | None = None  # the sortable date of each document
    lesson_ids: np.ndarray | None = None  # each document's lesson id


_segments: dict[str, SegmentMasks] = {}


@dataclass
class Leaf:
    """One segment as the current searcher sees it."""

    searcher: Searcher
    offset: int
    masks: SegmentMasks
    live: int  # documents not deleted
    key: str = ""  # the segment's, for caches

    def postings(self, fieldname: str, text: str) -> Postings:
        """The word's postings in this segment (deleted documents included): ids in
        document order and weights; the text fields' are kept for the next query."""
        if fieldname not in CACHED_POSTINGS_FIELDS:
            return postings.read(self.searcher.reader(), fieldname, text)
        key = (self.key, fieldname, text)
        found = _postings.get(key)
        if found is None:
            read = postings.read(self.searcher.reader(), fieldname, text)
            found = Postings(read.ids.astype(np.int32), read.weights.astype(np.float32))
            _postings.put(key, found)
        return found

    def term(self, fieldname: str, text: str) -> int:
        key = (fieldname, text)
        found = self.masks.terms.get(key)
        if found is None:
            # (A word or field not in the segment reads as no postings: mask 0.)
            if fieldname in CACHED_POSTINGS_FIELDS:
                found = ids_to_mask(self.postings(fieldname, text).ids, self.masks.size)
            else:
                found = term_mask(self.searcher.reader(), fieldname, text, self.masks.size)
            with _lock:
                self.masks.terms[key] = found
                while len(self.masks.terms) > TERM_MASKS_KEPT:
                    self.masks.terms.popitem(last=False)
        return found & self.live

    def query(self, query: Query, within: int | None = None) -> int:
        """The live documents of this segment that ``query`` matches, among ``within``
        (default: every live one). Narrowing first is what makes phrases cheap: their
        positions are read only for the documents still in question."""
        scope = self.live if within is None else within & self.live
        return self._query(query, scope) if scope else 0

    def _query(self, query: Query, scope: int) -> int:
        if isinstance(query, Term):
            text = query.text
            if isinstance(text, bytes):
                try:
                    text = text.decode()
                except UnicodeDecodeError:
                    # An encoded value ("date:-" makes a date term): its bytes are the term.
                    return term_mask(self.searcher.reader(), query.fieldname, text,
                                     self.masks.size) & self.live & scope
            return self.term(query.fieldname, str(text)) & scope
        if isinstance(query, And):
            mask = scope
            for child in sorted(query.subqueries, key=_cost):  # words before phrases
                mask = self._query(child, mask)
                if not mask:
                    break
            return mask
        if isinstance(query, Or):
            mask = 0
            for child in sorted(query.subqueries, key=_cost):
                rest = scope & ~mask  # what an earlier part matched is in already
                if not rest:
                    break
                mask |= self._query(child, rest)
            return mask
        if isinstance(query, AndNot):
            mask = self._query(query.a, scope)
            return mask & ~self._query(query.b, mask) if mask else 0
        if isinstance(query, Not):
            return scope & ~self._query(query.query, scope)
        if isinstance(query, Every):
            return scope
        if query is NullQuery:
            return 0
        if isinstance(query, Phrase) and query.slop == 1 and query.words and \
                _has_positions(self.searcher, query.fieldname):
            return self.phrase(query.fieldname, query.words, scope)
        # Sloppy phrases, wildcards, ranges: ask Whoosh for the documents.
        context = self.searcher.boolean_context()
        return ids_to_mask(query.matcher(self.searcher, context).all_ids(),
                           self.masks.size) & scope

    def phrase(self, fieldname: str, words: list[str | bytes], scope: int) -> int:
        """The documents of ``scope`` holding ``words`` at consecutive positions (what
        Whoosh's phrase with slop 1 matches), checked on the positions of the documents
        holding every word only, rarest word first."""
        texts = [w.decode() if isinstance(w, bytes) else str(w) for w in words]
        candidates = scope
        for text in set(texts):
            candidates &= self.term(fieldname, text)
            if not candidates:
                return 0
        offsets: dict[str, list[int]] = {}
        for offset, text in enumerate(texts):
            offsets.setdefault(text, []).append(offset)
        reader = self.searcher.reader()
        docs = np.asarray(mask_to_ids(candidates), dtype=np.int64)
        starts = None  # document << 32 | where the phrase would start in it
        for text in sorted(offsets, key=lambda t: self.term(fieldname, t).bit_count()):
            doc_of, where = postings.positions(reader, fieldname, text, docs)
            for offset in offsets[text]:
                keep = where >= offset
                keys = (doc_of[keep] << 32) | (where[keep] - offset)
                starts = keys if starts is None else np.intersect1d(starts, keys,
                                                                    assume_unique=True)
                if not len(starts):
                    return 0
            docs = np.unique(starts >> 32)
        return ids_to_mask(docs, self.masks.size)

    def lengths(self, fieldname: str) -> np.ndarray:
        """Each document's length in ``fieldname`` (for BM25), read once per segment."""
        found = self.masks.lengths.get(fieldname)
        if found is None:
            reader = self.searcher.reader()
            found = np.fromiter(
                (reader.doc_field_length(doc, fieldname, 0) or 0
                 for doc in range(self.masks.size)), dtype=np.float64, count=self.masks.size)
            with _lock:
                found = self.masks.lengths.setdefault(fieldname, found)
        return found

    def dates(self) -> list[int]:
        """Each document's date as a sortable number, read once per segment."""
        dates = self.masks.dates
        if dates is None:
            # The column's stored numbers, not datetimes: they sort the same, cost no
            # conversion, and a column's default value is no date at all.
            column = self.searcher.reader().column_reader("observed", translate=False)
            dates = self.masks.dates = [value or 0 for value in column]
        return dates

    def lesson_ids(self) -> np.ndarray:
        """Each document's lesson id, read once per segment. Equal scores and dates are
        ordered by it, not by document number: merges reorder documents, and a merge
        can be set off by a lesson the user may not see."""
        found = self.masks.lesson_ids
        if found is None:
            reader = self.searcher.reader()
            found = np.fromiter(
                (int(reader.stored_fields(doc).get("lesson_id") or 0)
                 for doc in range(self.masks.size)), dtype=np.int64, count=self.masks.size)
            self.masks.lesson_ids = found
        return found

    def facet(self, fieldname: str) -> dict[str, int]:
        values = self.masks.facets.get(fieldname)
        if values is None:
            reader = self.searcher.reader()
            values = {}
            for raw in reader.lexicon(fieldname):
                text = raw.decode("utf-8")
                values[text] = term_mask(reader, fieldname, raw, self.masks.size)
            with _lock:
                values = self.masks.facets.setdefault(fieldname, values)
        return values


def _has_positions(searcher: Searcher, fieldname: str) -> bool:
    field = searcher.schema[fieldname] if fieldname in searcher.schema else None
    return bool(field and field.format and field.format.supports("positions"))


def _cost(query: Query) -> int:
    """Rough order of evaluation: masks of words first, position checks last."""
    if isinstance(query, Term):
        return 0
    if query.is_leaf():
        return 2
    return max((_cost(child) for child in query.children()), default=0)


def leaves(searcher: Searcher, generation: str) -> list[Leaf]:
    """The searcher's segments with their masks; forgets segments no longer in use."""
    found: list[Leaf] = []
    if searcher.doc_count_all() == 0:
        return found
    for leaf_searcher, offset in searcher.leaf_searchers():
        reader = leaf_searcher.reader()
        size = reader.doc_count_all()
        key = f"{generation}/{reader.segment().segment_id()}"
        masks = _segments.get(key)
        if masks is None or masks.size != size:
            with _lock:
                masks = _segments.get(key)
                if masks is None or masks.size != size:
                    masks = _segments[key] = SegmentMasks(size=size)
        deleted = reader.deleted_docs_set if reader.has_deletions() else ()
        live = ((1 << size) - 1) & ~ids_to_mask(deleted, size)
        found.append(Leaf(leaf_searcher, offset, masks, live, key))
    in_use = {f"{generation}/{leaf.searcher.reader().segment().segment_id()}"
              for leaf in found}
    if len(_segments) > 4 * max(len(in_use), 8):
        # Other threads may hold other generations' searchers; forget only the surplus.
        with _lock:
            for key in [k for k in _segments if k not in in_use][: len(_segments) // 2]:
                _segments.pop(key, None)
    return found


class VisibleWords:
    """Whether a word of a field occurs in a live document the searcher may see, read
    from each segment's postings: what the wildcard limit counts (``limits``), so that
    "too broad" never depends on a lesson hidden from the searcher. The postings read
    here bypass the caches: the words looked up are the rare tail of a broad wildcard,
    and would push out the words queries use."""

    def __init__(self, leaves_: list[Leaf], visible: list[int]) -> None:
        self._parts = [(leaf, mask) for leaf, mask in zip(leaves_, visible, strict=True)
                       if mask]
        self._seen: list[np.ndarray] | None = None

    def __call__(self, fieldname: str, text: bytes) -> bool:
        if self._seen is None:
            self._seen = [_mask_to_bools(mask, leaf.masks.size) for leaf, mask in self._parts]
        for (leaf, _), seen in zip(self._parts, self._seen, strict=True):
            ids = postings.read(leaf.searcher.reader(), fieldname, text, weights=False).ids
            if ids.size and seen[ids].any():
                return True
        return False


def _mask_to_bools(mask: int, size: int) -> np.ndarray:
    data = np.frombuffer(mask.to_bytes((size + 7) >> 3, "little"), np.uint8)
    return np.unpackbits(data, count=size, bitorder="little").astype(bool)


def leaf_index(leaves_: list[Leaf], docnum: int) -> int:
    """The position in ``leaves_`` of the segment holding global document ``docnum``."""
    for i in range(len(leaves_) - 1, -1, -1):
        if docnum >= leaves_[i].offset:
            return i
    raise ValueError(docnum)


def any_term(leaf: Leaf, fieldname: str, values: Iterable[str]) -> int:
    """The segment's documents holding any of ``values`` in ``fieldname``."""
    mask = 0
    for value in values:
        mask |= leaf.term(fieldname, value)
    return mask


def popcount(masks: Iterable[int]) -> int:
    return sum(mask.bit_count() for mask in masks)


def facet_counts(leaves_: list[Leaf], fieldname: str, base: list[int]) -> dict[str, int]:
    """How many of the ``base`` documents hold each value of ``fieldname``."""
    counts: dict[str, int] = {}
    for leaf, mask in zip(leaves_, base, strict=True):
        if not mask:
            continue
        for value, value_mask in leaf.facet(fieldname).items():
            count = (mask & value_mask).bit_count()
            if count:
                counts[value] = counts.get(value, 0) + count
    return counts


__all__ = ["FACETS", "Leaf", "VisibleWords", "any_term", "facet_counts", "ids_to_mask",
           "leaf_index", "leaves",
           "mask_to_ids", "popcount", "term_mask"]

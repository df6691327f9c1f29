"""Reading a segment's posting lists straight from Whoosh's block format, with numpy.

Whoosh's W3 codec stores a term's postings in blocks of up to 128: each block one
zlib-compressed pickle of ``(ids, weights, values)``. The values (a word's positions in
each document) are pickled as protocol-2 byte strings, which unpickle through a function
call each: unpickling a block costs about six times what reading its ids and weights
does. Masks and ranking need only the ids and weights, so they are read here from the
pickle's bytes without unpickling it (the opcodes of a tuple of small integers and of a
tuple of floats are a fixed layout); anything else in that stream, and any posting
list not in that codec, is read the ordinary way. Phrases read the values too, but
only of the blocks that hold documents still in question.

The ids come out per segment (deleted documents included: the callers' masks exclude
them), sorted, as numpy arrays.
"""

from __future__ import annotations

import pickle
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from whoosh.reading import TermNotFound

_PROTO2 = b"\x80\x02"
_MARK, _TUPLE, _BINPUT, _LONG_BINPUT = 0x28, 0x74, 0x71, 0x72
_BININT1, _BININT2, _BININT = 0x4B, 0x4D, 0x4A
_NONE, _BINFLOAT = 0x4E, 0x47
_FLOATS = np.dtype([("op", "u1"), ("value", ">f8")])
_ONE = b"G" + struct.pack(">d", 1.0)
# A posting's positions: a count, then the gaps pickled as a list; with one position,
# the count 1 and a one-item list of a one- or two-byte integer.
_ONE_POSITION_K = b"\x00\x00\x00\x01\x80\x02]q\x00K"
_ONE_POSITION_M = b"\x00\x00\x00\x01\x80\x02]q\x00M"
_EMPTY_IDS = np.zeros(0, dtype=np.int64)
_EMPTY_WEIGHTS = np.zeros(0, dtype=np.float64)


@dataclass
class Postings:
    """A term's postings in one segment: document numbers and weights (term counts)."""

    ids: np.ndarray  # int64, ascending
    weights: np.ndarray  # float64, one per id

    def __len__(self) -> int:
        return len(self.ids)


NO_POSTINGS = Postings(_EMPTY_IDS, _EMPTY_WEIGHTS)


def _block_matcher(reader, fieldname: str, text: str | bytes):
    """Whoosh's matcher over the term's blocks, or None if the term is not in the
    segment. Raises AttributeError if it is not a W3 block matcher."""
    raw = text.encode("utf-8") if isinstance(text, str) else text
    try:
        matcher = reader._terms.matcher(fieldname, raw, reader.schema[fieldname].format)
    except (KeyError, TermNotFound):
        return None
    if getattr(matcher, "_byteids", True) or not hasattr(matcher, "_postfile"):
        raise AttributeError("not a W3 block matcher")
    return matcher


def _blocks(matcher) -> Iterator[tuple[bytes, int, int]]:
    """Each block's uncompressed data with its posting count and last document."""
    postfile = matcher._postfile
    while not matcher._atend:
        data = postfile.get(matcher._dataoffset, matcher._nextoffset - matcher._dataoffset)
        if matcher._compression:
            data = zlib.decompress(data)
        yield data, matcher._blocklength, matcher._maxid
        matcher._next_block()


def _int_at(data: bytes, at: int) -> tuple[int, int] | None:
    """The pickled integer at ``at`` and the offset after it (None: not an integer)."""
    op = data[at]
    if op == _BININT1:
        return data[at + 1], at + 2
    if op == _BININT2:
        return data[at + 1] | data[at + 2] << 8, at + 3
    if op == _BININT:
        return int.from_bytes(data[at + 1:at + 5], "little", signed=True), at + 5
    return None


def _parse_ids(data: bytes, count: int, last: int, gaps: list[int]) -> int | None:
    """Append the block's ids to ``gaps`` as gaps (the first from ``last``, the previous
    block's last id) and return the offset just past the ids tuple; read from the
    pickle's opcodes. None (and ``gaps`` unchanged) if the layout is not the one
    expected.

    Ids are delta-encoded from zero in each block: the first is a document number (any
    width), the rest are gaps, mostly under 256 (an opcode byte and a value byte)."""
    if count < 4 or data[:2] != _PROTO2 or data[2] != _MARK:
        return None
    found = _int_at(data, 3)
    if found is None:
        return None
    first, at = found
    end = at + 2 * (count - 1)
    if data[at:end:2] == b"K" * (count - 1) and data[end] == _TUPLE:
        gaps.append(first - last)
        gaps.extend(data[at + 1:end:2])
        return end + 1
    block: list[int] = [first - last]
    for _ in range(count - 1):
        found = _int_at(data, at)
        if found is None:
            return None
        gap, at = found
        block.append(gap)
    if data[at] != _TUPLE:
        return None
    gaps.extend(block)
    return at + 1


def _weights_region(data: bytes, at: int, count: int) -> bytes | None:
    """The block's weights after the ids tuple, as ``count`` pickled floats (opcode and
    big-endian double each); None if the layout is not the one expected."""
    op = data[at]
    if op == _BINPUT:
        at += 2
    elif op == _LONG_BINPUT:
        at += 5
    else:
        return None
    op = data[at]
    if op == _NONE:  # every weight 1
        return _ONE * count
    if op == _BINFLOAT:  # every weight the same
        return data[at:at + 9] * count
    end = at + 1 + 9 * count
    if op != _MARK or len(data) <= end or data[end] != _TUPLE:
        return None
    return data[at + 1:end]


def _unpickled(data: bytes) -> tuple[list[int], bytes]:
    """(ids, weights as pickled floats) the ordinary way."""
    ids, weights, _values = pickle.loads(data)
    out, base = [], 0
    for delta in ids:
        base += delta
        out.append(base)
    if weights is None:
        region = _ONE * len(out)
    elif isinstance(weights, float | int):
        region = (b"G" + struct.pack(">d", weights)) * len(out)
    else:
        region = b"".join(b"G" + struct.pack(">d", w) for w in weights)
    return out, region


def read(reader, fieldname: str, text: str | bytes, weights: bool = True) -> Postings:
    """The term's postings in the segment ``reader`` (deleted documents included);
    with ``weights=False`` the weights are all 1 (not read)."""
    try:
        matcher = _block_matcher(reader, fieldname, text)
    except AttributeError:
        return _read_generic(reader, fieldname, text)
    if matcher is None:
        return NO_POSTINGS
    # Gaps between consecutive ids, all blocks in one list; each block's first id made
    # a gap from the previous block's last, so one cumulative sum gives every id.
    gaps: list[int] = []
    regions: list[bytes] = []
    last = 0
    for data, count, block_last in _blocks(matcher):
        before = len(gaps)
        after_ids = _parse_ids(data, count, last, gaps)
        region = None
        if after_ids is not None and weights:
            region = _weights_region(data, after_ids, count)
            if region is None:
                del gaps[before:]
                after_ids = None
        if after_ids is None:
            ids, region = _unpickled(data)
            gaps.append(ids[0] - last)
            gaps.extend(b - a for a, b in zip(ids, ids[1:], strict=False))
        if weights:
            regions.append(region)
        last = block_last
    if not gaps:
        return NO_POSTINGS
    ids = np.cumsum(np.array(gaps, dtype=np.int64))
    if not weights:
        return Postings(ids, np.ones(len(ids), dtype=np.float64))
    floats = np.frombuffer(b"".join(regions), dtype=_FLOATS)
    if len(floats) != len(ids) or not (floats["op"] == _BINFLOAT).all():
        raise ValueError(f"unreadable weights in the postings of {fieldname}:{text!r}")
    return Postings(ids, floats["value"].astype(np.float64))


def _read_generic(reader, fieldname: str, text: str | bytes) -> Postings:
    """Through Whoosh's public matcher (inline postings, other codecs)."""
    try:
        matcher = reader.postings(fieldname, text)
    except (KeyError, TermNotFound):
        return NO_POSTINGS
    ids, weights = [], []
    while matcher.is_active():
        ids.append(matcher.id())
        weights.append(matcher.weight())
        matcher.next()
    if not ids:
        return NO_POSTINGS
    return Postings(np.asarray(ids, dtype=np.int64), np.asarray(weights, dtype=np.float64))


def positions(reader, fieldname: str, text: str | bytes, docs: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:
    """Where the term occurs in the documents ``docs`` (sorted document numbers) of the
    segment: parallel arrays of document numbers and word positions, by document.

    Only the blocks whose id range holds one of ``docs`` are decompressed; those are
    unpickled in full (the positions are in the part that is slow to read)."""
    try:
        matcher = _block_matcher(reader, fieldname, text)
    except AttributeError:
        return _positions_generic(reader, fieldname, text, docs)
    if matcher is None or not len(docs):
        return _EMPTY_IDS, _EMPTY_IDS
    found_docs: list[int] = []
    counts: list[int] = []
    gaps: list[int] = []  # position gaps, per document from zero
    first = 0  # the block's lowest possible id
    postfile = matcher._postfile
    while not matcher._atend:
        last = matcher._maxid
        start = np.searchsorted(docs, first)
        if start < len(docs) and docs[start] <= last:
            data = postfile.get(matcher._dataoffset,
                                matcher._nextoffset - matcher._dataoffset)
            if matcher._compression:
                data = zlib.decompress(data)
            id_gaps, _weights, values = pickle.loads(data)
            ids = np.cumsum(np.asarray(id_gaps, dtype=np.int64))
            wanted = docs[start:np.searchsorted(docs, last, side="right")]
            at = np.minimum(np.searchsorted(ids, wanted), len(ids) - 1)
            at = at[ids[at] == wanted]
            for k, doc in zip(at.tolist(), ids[at].tolist(), strict=True):
                value = values[k]
                head = value[:10]
                if head == _ONE_POSITION_K and len(value) == 13:
                    gaps.append(value[10])  # the usual value: one position under 256
                    counts.append(1)
                elif head == _ONE_POSITION_M and len(value) == 14:
                    gaps.append(value[10] | value[11] << 8)
                    counts.append(1)
                else:
                    deltas = pickle.loads(value[4:] if value.endswith(b".")
                                          else value[4:] + b".")
                    counts.append(len(deltas))
                    gaps.extend(deltas)
                found_docs.append(doc)
        first = last + 1
        matcher._next_block()
    return _by_document(found_docs, counts, gaps)


def _by_document(found_docs: list[int], counts: list[int], gaps: list[int]
                 ) -> tuple[np.ndarray, np.ndarray]:
    """(document per position, position) from each document's position gaps."""
    if not found_docs:
        return _EMPTY_IDS, _EMPTY_IDS
    sizes = np.asarray(counts, dtype=np.int64)
    running = np.cumsum(np.asarray(gaps, dtype=np.int64))
    # Each document's positions restart from zero: take off what came before it.
    ends = np.cumsum(sizes)
    before = np.concatenate(([0], running[ends[:-1] - 1]))
    return (np.repeat(np.asarray(found_docs, dtype=np.int64), sizes),
            running - np.repeat(before, sizes))


def _positions_generic(reader, fieldname: str, text: str | bytes, docs: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray]:
    try:
        matcher = reader.postings(fieldname, text)
    except (KeyError, TermNotFound):
        return _EMPTY_IDS, _EMPTY_IDS
    wanted = set(docs.tolist())
    found_docs: list[int] = []
    counts: list[int] = []
    gaps: list[int] = []
    while matcher.is_active():
        doc = matcher.id()
        if doc in wanted:
            where = matcher.value_as("positions")
            found_docs.append(doc)
            counts.append(len(where))
            gaps.extend(b - a for a, b in zip([0, *where], where, strict=False))
        matcher.next()
    return _by_document(found_docs, counts, gaps)

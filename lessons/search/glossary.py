"""Equivalent terms and acronyms across the five armies, for expanding queries.

A US author writes "LNO", a British one "LO", an Australian "liaison officer": a searcher
should find all three whichever one they type. A glossary is a list of *groups*; every term
in a group is equivalent to every other one, so a query term is expanded with the rest of
its group.

This module knows nothing of the database or of the index: the app keeps the admins' glossary
in a table and builds a ``Glossary`` from its rows, and the query layer turns the matches
``find_terms`` reports into query clauses. Keeping it pure makes the matching testable and
lets the admin form reuse ``validate_groups`` before saving.

Terms are compared as word sequences: lower-cased, apostrophes dropped, split on anything
that is not a letter or digit ("HA/DR" -> ha dr, "REL TO" -> rel to, "commander's" ->
commanders), each word folded by ``spelling.canonical`` so "defence" and "defense" agree.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from whoosh.lang.porter import stem

from lessons.search.spelling import canonical

DEFAULT_GLOSSARY_PATH = Path(__file__).with_name("glossary_default.json")

# Limits that keep an admin-edited glossary from turning a query into thousands of clauses.
MIN_GROUP_TERMS = 2
MAX_GROUP_TERMS = 20
MAX_TERM_LENGTH = 80
MAX_GROUPS = 500
# The note says why the terms are equivalent; a paragraph is plenty.
MAX_NOTE_LENGTH = 1000

_APOSTROPHES = re.compile(r"['\u2019\u2018`]")
_WORD = re.compile(r"[^\W_]+")
_SPACES = re.compile(r"\s+")

Key = tuple[str, ...]


def tokenize(text: str) -> list[str]:
    """Split ``text`` into lower-case words the way glossary terms are split.

    The query layer must cut the user's query with this same function before calling
    ``Glossary.find_terms``, or punctuated terms such as "HA/DR" will not line up.
    """
    return _WORD.findall(_APOSTROPHES.sub("", text.lower()))


def clean_term(term: str) -> str:
    """The stored form of a term: trimmed, lower-cased, inner whitespace collapsed.

    Lower-cased because the index is lower-cased too; the case of "LNO" carries no
    meaning a search could use.
    """
    return _SPACES.sub(" ", term.strip().lower())


def clean_group(terms: Iterable[str]) -> list[str]:
    """Clean every term, drop empty ones and exact repeats, keep the admin's order."""
    seen: set[str] = set()
    cleaned: list[str] = []
    for term in terms:
        term = clean_term(term)
        if term and term not in seen:
            seen.add(term)
            cleaned.append(term)
    return cleaned


def term_key(term: str, fold: Callable[[str], str] = canonical) -> Key:
    """The words a term is matched by, each folded by ``fold``."""
    return tuple(fold(word) for word in tokenize(term))


def stemmed(word: str) -> str:
    """``canonical`` then the index's Porter stemmer, as a ``fold`` for ``Glossary``.

    With it, plurals and other inflections match too ("LNOs", "liaison officers"), at the
    price of Porter's occasional over-reach on short acronyms. Off by default.
    """
    return stem(canonical(word))


@dataclass(frozen=True)
class Entry:
    """One shipped group with the note that says why its terms are equivalent."""

    terms: list[str]
    note: str


def load_default_entries(path: Path = DEFAULT_GLOSSARY_PATH) -> list[Entry]:
    """The shipped glossary with its notes, cleaned, for seeding the admins' table."""
    raw = json.loads(path.read_text(encoding="utf-8"))
    entries: list[Entry] = []
    for item in raw:
        terms = clean_group(str(term) for term in item.get("terms", []))
        if terms:
            entries.append(Entry(terms=terms, note=str(item.get("note", "")).strip()))
    return entries


def load_default_groups(path: Path = DEFAULT_GLOSSARY_PATH) -> list[list[str]]:
    """The shipped glossary's term groups, cleaned (lower-case, trimmed, no empties)."""
    return [entry.terms for entry in load_default_entries(path)]


def _describe(group: Sequence[str]) -> str:
    """A group as an admin recognises it: its first few terms, long ones cut short."""
    shown = ", ".join(f'"{term if len(term) <= 30 else term[:30] + "..."}"'
                      for term in group[:3])
    return f"({shown}{', ...' if len(group) > 3 else ''})"


def describe_group(group: Sequence[str]) -> str:
    """A group named by its first terms, e.g. 'the group ("lno", "lo", ...)', for messages
    that must point at a group by something other than its position."""
    return f"the group {_describe(clean_group(group))}"


def validate_groups(groups: Sequence[Sequence[str]],
                    fold: Callable[[str], str] = canonical,
                    labels: Sequence[str] | None = None) -> list[str]:
    """Problems an admin must fix before saving, as sentences; empty when there are none.

    A term in two groups is refused because expansion would silently chain the two
    groups together; comparison uses the matching key, so "defence x" and "defense x"
    or "HA/DR" and "ha dr" count as the same term.

    Groups are called "group N" by position unless ``labels`` names each one (e.g. "this
    group", ``describe_group(...)``): an admin editing one group of hundreds knows no
    positions.
    """
    problems: list[str] = []
    if len(groups) > MAX_GROUPS:
        problems.append(f"There are {len(groups)} groups; at most {MAX_GROUPS} are allowed.")
    owner: dict[Key, tuple[int, str]] = {}

    def name(number: int) -> str:
        return labels[number - 1] if labels is not None else f"group {number}"

    for number, raw_group in enumerate(groups, start=1):
        group = clean_group(raw_group)
        if labels is not None:
            label = labels[number - 1][:1].upper() + labels[number - 1][1:]
        else:
            label = f"Group {number} {_describe(group)}" if group else f"Group {number}"
        keys_here: dict[Key, str] = {}
        for term in group:
            if len(term) > MAX_TERM_LENGTH:
                problems.append(f'{label}: the term "{term[:40]}..." is longer than '
                                f"{MAX_TERM_LENGTH} characters.")
            key = term_key(term, fold)
            if not key:
                problems.append(f'{label}: the term "{term}" has no letters or digits.')
                continue
            if key in keys_here:
                continue  # a spelling variant of a term already in this group
            keys_here[key] = term
            if key in owner:
                other_number, other_term = owner[key]
                same = "" if other_term == term else f' (as "{other_term}")'
                problems.append(f'The term "{term}" is in {name(other_number)}{same} and '
                                f"{name(number)}; a term may belong to one group only.")
            else:
                owner[key] = (number, term)
        if len(keys_here) < MIN_GROUP_TERMS:
            problems.append(f"{label} has fewer than {MIN_GROUP_TERMS} different terms.")
        if len(group) > MAX_GROUP_TERMS:
            problems.append(f"{label} has {len(group)} terms; at most {MAX_GROUP_TERMS} "
                            "are allowed.")
    return problems


class Glossary:
    """Term groups indexed for expansion, built once per glossary version.

    Tolerant of bad data (an admin's table may be mid-edit): a term claimed by two groups
    belongs to the first, and a group left with one usable term expands nothing. Use
    ``validate_groups`` to tell the admin.
    """

    def __init__(self, groups: Iterable[Iterable[str]],
                 fold: Callable[[str], str] = canonical) -> None:
        self._fold = fold
        self._groups: list[list[tuple[Key, str]]] = []
        self._owner: dict[Key, int] = {}
        for raw_group in groups:
            members: list[tuple[Key, str]] = []
            for term in clean_group(raw_group):
                key = term_key(term, fold)
                if key and key not in self._owner and all(key != k for k, _ in members):
                    members.append((key, term))
            if len(members) < MIN_GROUP_TERMS:
                continue
            index = len(self._groups)
            self._groups.append(members)
            for key, _ in members:
                self._owner[key] = index
        self._longest = max((len(key) for key in self._owner), default=0)

    def __len__(self) -> int:
        return len(self._groups)

    @property
    def groups(self) -> list[list[str]]:
        """The usable groups as cleaned terms (what expansion actually works from)."""
        return [[term for _, term in members] for members in self._groups]

    def _others(self, key: Key) -> list[str]:
        index = self._owner.get(key)
        if index is None:
            return []
        return [term for other_key, term in self._groups[index] if other_key != key]

    def expansions(self, phrase_or_word: str) -> list[str]:
        """The other terms of the group that ``phrase_or_word`` belongs to, else ``[]``.

        The whole text must be a term: "liaison officer" expands, "the liaison officer"
        does not (use ``find_terms`` for running text).
        """
        return self._others(term_key(phrase_or_word, self._fold))

    def find_terms(self, words: Sequence[str]) -> list[tuple[int, int, list[str]]]:
        """Glossary terms in ``words``, as (start, end exclusive, the group's other terms).

        Greedy, left to right, longest match first, and matches never overlap: "counter
        drone" is one match (C-UAS), not "drone" (UAS). ``words`` should come from
        ``tokenize``; each is folded with the glossary's ``fold`` before comparison.
        """
        keys = [self._fold(word) for word in words]
        found: list[tuple[int, int, list[str]]] = []
        start = 0
        while start < len(keys):
            for length in range(min(self._longest, len(keys) - start), 0, -1):
                key = tuple(keys[start:start + length])
                if key in self._owner:
                    found.append((start, start + length, self._others(key)))
                    start += length
                    break
            else:
                start += 1
        return found

"""Sortable list columns: what ``?sort=`` may say, and the links that change it.

A list names its columns once (``SortColumns``); the same object reads the query string,
builds each heading's link (a first click sorts the column its natural way, a second click
reverses it), says which heading carries ``aria-sort``, and offers the choices of the
"Sort by" control that stands in for the headings on a phone, where they are hidden. A
value it does not know is ignored (the list keeps its default order) rather than refused:
the sort is a reading preference, like every other list parameter, never a reason for an
error page.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class SortColumn:
    """One column a list sorts by: ``key`` in the URL (``-key`` reversed)."""

    key: str
    label: str  # the "Sort by" option's subject, e.g. "Observed date"
    ascending: str  # the option's words for each direction, e.g. "oldest first"
    descending: str
    first_descending: bool = False  # a heading's first click: dates newest first


@dataclass(frozen=True)
class Sort:
    """A parsed sort value: a column and a direction."""

    key: str
    descending: bool

    @property
    def value(self) -> str:
        return f"-{self.key}" if self.descending else self.key

    @property
    def aria(self) -> str:
        """The sorted heading's ``aria-sort`` value."""
        return "descending" if self.descending else "ascending"

    @property
    def arrow(self) -> str:
        return "\u2193" if self.descending else "\u2191"


class SortColumns:
    """The sortable columns of one list, in the order the "Sort by" control offers them."""

    def __init__(self, columns: Iterable[SortColumn]) -> None:
        self.columns = {column.key: column for column in columns}

    def parse(self, raw: str | None) -> str:
        """``raw`` when it names a column (``key`` or ``-key``), else ``""``."""
        raw = raw or ""
        return raw if raw.removeprefix("-") in self.columns else ""

    def read(self, value: str, default: str) -> Sort:
        """The sort ``value`` (already parsed) asks for, or ``default``."""
        value = self.parse(value) or default
        return Sort(value.removeprefix("-"), value.startswith("-"))

    def toggled(self, current: Sort, key: str) -> str:
        """The sort value of ``key``'s heading link: the reverse when ``key`` is the sorted
        column, else the column's natural first direction."""
        if current.key == key:
            return Sort(key, not current.descending).value
        return Sort(key, self.columns[key].first_descending).value

    def choices(self) -> list[tuple[str, str]]:
        """``(value, label)`` of every column in both directions, natural direction first."""
        found: list[tuple[str, str]] = []
        for column in self.columns.values():
            pair = [(f"-{column.key}", f"{column.label} ({column.descending})"),
                    (column.key, f"{column.label} ({column.ascending})")]
            found.extend(pair if column.first_descending else reversed(pair))
        return found

"""Page numbers from the query string, range-checked once for every page that lists.

A number past what the database or the index can count to (``?page=99999999999999999999``)
was a server error; it is now a 422 that says which pages exist, in the words of the
API's ``page`` parameter. Text that is no number at all is ignored (page 1), as pages
ignore every other query parameter they cannot use.
"""

from __future__ import annotations

from flask import request

from lessons.errors import ValidationFailed
from lessons.rules import PAGE_MAX


def page_arg(high: int = PAGE_MAX, name: str = "page") -> int:
    """``request.args[name]`` as a page number from 1 to ``high`` (1 when absent, not a
    whole number, or 0)."""
    raw = request.args.get(name, "").strip()
    if not raw.isdigit():
        return 1
    if int(raw) > high:
        raise ValidationFailed({name: f"Must be a whole number from 1 to {high:,}."},
                               f"The page number must be a whole number from 1 to {high:,}.")
    return max(int(raw), 1)

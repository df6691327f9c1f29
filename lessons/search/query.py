"""Queries: parsing what users type, the policy's visibility rule as an index filter,
and highlighting from the database's text."""

from __future__ import annotations

from whoosh import highlight
from whoosh.qparser import MultifieldParser, OrGroup
from whoosh.query import And, Every, NullQuery, Or, Query, Term

from lessons.policy import AllOf, AnyOf, Match, Rule
from lessons.search.schema import TEXT_FIELDS, build_schema, text_analyzer

# Policy rule fields -> index fields.
_INDEX_FIELDS = {
    "releasable_to": "releasable_to",
    "status": "status",
    "author_id": "author_id",
    "originator_nation": "originator",
}

_schema = build_schema()
_analyzer = text_analyzer()


def to_whoosh(rule: Rule) -> Query:
    """Compile the policy's visibility rule into an index filter (same rule, third form)."""
    if isinstance(rule, Match):
        name = _INDEX_FIELDS[rule.field]
        terms = [Term(name, str(value)) for value in sorted(rule.values, key=str)]
        return Or(terms) if terms else NullQuery
    parts = [to_whoosh(p) for p in rule.parts]
    if isinstance(rule, AllOf):
        return And(parts) if parts else Every()
    assert isinstance(rule, AnyOf)
    return Or(parts) if parts else NullQuery


def parse(text: str) -> Query:
    """Parse a user's query over the text fields, title weighted most.

    Words are ANDed by default, as searchers expect; OR, NOT and "phrases" work.
    """
    parser = MultifieldParser(list(TEXT_FIELDS), _schema, fieldboosts=TEXT_FIELDS)
    return parser.parse(text)


def parse_any(text: str) -> Query:
    """Any of the words (for "related" style matching)."""
    parser = MultifieldParser(list(TEXT_FIELDS), _schema, fieldboosts=TEXT_FIELDS,
                              group=OrGroup)
    return parser.parse(text)


def highlight_terms(query: Query) -> frozenset[str]:
    """The analysed words of ``query`` that snippets should mark."""
    return frozenset(
        text.decode("utf-8") if isinstance(text, bytes) else text
        for fieldname, text in query.iter_all_terms(phrases=True)
        if fieldname in TEXT_FIELDS
    )


_formatter = highlight.HtmlFormatter(tagname="mark", between=" … ")
_fragmenter = highlight.ContextFragmenter(maxchars=220, surround=60)


def snippet(text: str, terms: frozenset[str], top: int = 2) -> str:
    """HTML-escaped text around the matched words, with the words in ``<mark>``."""
    if not text or not terms:
        return ""
    return highlight.highlight(text, terms, _analyzer, _fragmenter, _formatter, top=top)

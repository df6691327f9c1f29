"""Queries: what users type turned into an index query, glossary expansion, the policy's
visibility rule as an index query, and highlighting from the database's text.

The query language is Whoosh's (AND / OR / NOT, "phrases", wildcards, ``field:value``,
``date:[2022 to 2023]``, ``date:>2023``), parsed against a schema that holds only the
fields users may name, so ``releasable_to:`` or ``author_id:`` are read as plain words.
Plain words are then spread over the title (boosted) and the content, and phrases over
both fields' positions.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache

from whoosh import highlight
from whoosh.analysis import Token
from whoosh.fields import Schema
from whoosh.qparser import (
    GtLtPlugin,
    OrGroup,
    QueryParser,
    QueryParserError,
)
from whoosh.qparser.dateparse import DateParserPlugin
from whoosh.query import (
    And,
    Every,
    FuzzyTerm,
    NullQuery,
    Or,
    Phrase,
    Prefix,
    Query,
    Term,
    Wildcard,
)

from lessons.policy import AllOf, AnyOf, Match, Rule
from lessons.search.glossary import Glossary, tokenize
from lessons.search.limits import check_shape
from lessons.search.schema import (
    CONTENT,
    QUERY_FIELDS,
    STOP_MIN_LENGTH,
    STOP_WORDS,
    TITLE,
    TITLE_BOOST,
    TOKEN_PATTERN,
    build_schema,
)
from lessons.search.spelling import fold_and_stem

# Policy rule fields -> index fields (values are lower-cased like the index's).
_INDEX_FIELDS = {
    "releasable_to": "releasable_to",
    "status": "status",
    "author_id": "author_id",
    "originator_nation": "originator",
}
_OPERATORS = {"AND", "OR", "NOT", "ANDNOT", "ANDMAYBE", "TO"}
_LEXEME = re.compile(r'"[^"]*"?|[()]|[^\s()"]+')
_QUERY_NAMES = {name for name in QUERY_FIELDS if QUERY_FIELDS[name] == name}
_ALIAS = re.compile(r"(?<![\w:])(" + "|".join(
    alias for alias, target in QUERY_FIELDS.items() if alias != target) + r"):")

_schema = build_schema()
# Only what users may name: the content field plus the query-language fields.
_query_schema = Schema(**{name: _schema[name] for name in {CONTENT, *_QUERY_NAMES}})


class UnreadableQuery(Exception):
    """The parser could not make sense of the text (e.g. a broken date range)."""


@dataclass
class ParsedQuery:
    query: Query
    notice: str = ""
    # The plain words as typed, for "did you mean".
    words: list[str] = field(default_factory=list)


def to_whoosh(rule: Rule) -> Query:
    """Compile the policy's visibility rule into an index query (same rule, third form)."""
    if isinstance(rule, Match):
        name = _INDEX_FIELDS[rule.field]
        terms = [Term(name, str(value).lower()) for value in sorted(rule.values, key=str)]
        return Or(terms) if terms else NullQuery
    parts = [to_whoosh(p) for p in rule.parts]
    if isinstance(rule, AllOf):
        return And(parts) if parts else Every()
    assert isinstance(rule, AnyOf)
    return Or(parts) if parts else NullQuery


def _parser(group=None) -> QueryParser:
    parser = QueryParser(CONTENT, _query_schema, **({"group": group} if group else {}))
    parser.add_plugin(GtLtPlugin())
    parser.add_plugin(DateParserPlugin(callback=_date_error))
    return parser


def _date_error(text: str) -> None:
    raise UnreadableQuery(f"not a date: {text}")


def _plain_word(lexeme: str) -> bool:
    return (lexeme not in _OPERATORS and not lexeme.startswith('"') and lexeme not in "()"
            and ":" not in lexeme and not any(c in lexeme for c in "*?[]{}<>^~"))


def _alternative(term: str) -> str:
    term = term.replace('"', " ").strip()
    return f'"{term}"' if " " in term or not _plain_word(term) else term


def expand(text: str, glossary: Glossary | None) -> str:
    """``text`` with each glossary term replaced by an OR of its group: "LNO reports"
    becomes ``(LNO OR LO OR "liaison officer") reports``.

    Works on the query's words as typed (operators, fields and wildcards are left alone),
    so the parser sees an ordinary query and the index needs no rebuild when the
    glossary changes.
    """
    if glossary is None or not len(glossary):
        return text
    lexemes = _LEXEME.findall(text)
    out: list[str] = []
    run: list[str] = []

    def flush() -> None:
        # Glossary words of the run, each pointing back at the lexeme it came from.
        words: list[str] = []
        owner: list[int] = []
        for position, lexeme in enumerate(run):
            for word in tokenize(lexeme):
                words.append(word)
                owner.append(position)
        starts = {i for i in range(len(words)) if i == 0 or owner[i - 1] != owner[i]}
        ends = {i + 1 for i in range(len(words))
                if i == len(words) - 1 or owner[i + 1] != owner[i]}
        replaced: dict[int, tuple[int, str]] = {}
        for start, end, others in glossary.find_terms(words):
            if start not in starts or end not in ends or not others:
                continue  # the term covers part of a typed word only: leave it
            first, last = owner[start], owner[end - 1]
            typed = " ".join(run[first:last + 1])
            own = typed if first == last else f'"{typed}"'
            group = " OR ".join([own, *(_alternative(t) for t in others)])
            replaced[first] = (last, f"({group})")
        position = 0
        while position < len(run):
            if position in replaced:
                last, group = replaced[position]
                out.append(group)
                position = last + 1
            else:
                out.append(run[position])
                position += 1
        run.clear()

    for lexeme in lexemes:
        if _plain_word(lexeme):
            run.append(lexeme)
            continue
        flush()
        if lexeme.startswith('"') and lexeme.endswith('"') and len(lexeme) > 2:
            others = glossary.expansions(lexeme.strip('"'))
            if others:
                lexeme = "(" + " OR ".join([lexeme, *(_alternative(t) for t in others)]) + ")"
        out.append(lexeme)
    flush()
    return " ".join(out)


def _spread(query: Query) -> Query:
    """Plain words, phrases and wildcards on the content field also match the title,
    boosted."""
    if isinstance(query, Term) and query.fieldname == CONTENT:
        return Or([Term(TITLE, query.text, boost=TITLE_BOOST * query.boost),
                   Term(CONTENT, query.text, boost=query.boost)])
    if isinstance(query, Phrase) and query.fieldname == CONTENT:
        words = list(query.words)
        if len(words) == 1:
            return _spread(Term(CONTENT, words[0], boost=query.boost))
        return Or([Phrase(TITLE, words, slop=query.slop, boost=TITLE_BOOST * query.boost),
                   query])
    if isinstance(query, (Wildcard, Prefix, FuzzyTerm)) and query.fieldname == CONTENT:
        title = query.copy()
        title.fieldname = TITLE
        title.boost = TITLE_BOOST * query.boost
        return Or([title, query])
    if query.is_leaf():
        return query
    return query.apply(_spread)


def parse(text: str, glossary: Glossary | None = None) -> ParsedQuery:
    """Parse a user's query: words ANDed by default, as searchers expect.

    A query the parser cannot read is searched as plain words (any of them), with a
    notice, never an error. Raises ``limits.TooBroad`` for a query that would cost more
    than one search may (see ``limits.check_shape``).
    """
    text = _ALIAS.sub(lambda m: QUERY_FIELDS[m.group(1)] + ":", text)
    words = [lexeme for lexeme in _LEXEME.findall(text) if _plain_word(lexeme)]
    try:
        parsed = _parser().parse(expand(text, glossary))
        if _has_errors(parsed):
            raise UnreadableQuery(text)
    # Whoosh's parser also fails with IndexError and others on inputs such as "<x": any
    # failure to read the text is the user's query, not a server error.
    except (QueryParserError, UnreadableQuery, ValueError, TypeError, IndexError,
            KeyError, AttributeError, RecursionError):
        plain = _plain_words(text)
        fallback = _parser(OrGroup).parse(expand(plain, glossary))
        check_shape(fallback)
        return ParsedQuery(
            query=_spread(fallback),
            notice="Your query could not be read as written; searched for its words.",
            words=plain.split())
    check_shape(parsed)
    return ParsedQuery(query=_spread(parsed), words=words)


def _plain_words(text: str) -> str:
    """The letters and digits of ``text`` as words, operators ("NOT") made plain words
    too: what is searched when the text cannot be read as a query."""
    return " ".join(word.lower() if word in _OPERATORS else word
                    for word in re.findall(r"[^\W_]+", text))


def parse_any(text: str) -> Query:
    """Any of the words, ranked (for "related" style matching)."""
    plain = _plain_words(text)
    return _spread(_parser(OrGroup).parse(plain))


def _has_errors(query: Query) -> bool:
    if query.__class__.__name__ == "ErrorQuery":
        return True
    if query.is_leaf():
        return False
    return any(_has_errors(child) for child in query.children())


def highlight_terms(query: Query) -> frozenset[str]:
    """The analysed words of ``query`` that snippets should mark."""
    found: set[str] = set()
    for fieldname, text in query.iter_all_terms(phrases=True):
        text = text.decode("utf-8") if isinstance(text, bytes) else text
        if fieldname in (TITLE, CONTENT):
            found.add(text)
    return frozenset(found)


_formatter = highlight.HtmlFormatter(tagname="mark", between=" … ")
_fragmenter = highlight.ContextFragmenter(maxchars=220, surround=60)
_scorer = highlight.BasicFragmentScorer()
_word = re.compile(TOKEN_PATTERN)


@lru_cache(maxsize=200_000)
def _analysed(word: str) -> str:
    """A token as ``text_analyzer`` leaves it for highlighting: stop words (and single
    letters) as written in lower case, other words folded and stemmed."""
    word = word.lower()
    return word if len(word) < STOP_MIN_LENGTH or word in STOP_WORDS else fold_and_stem(word)


def _marked_tokens(text: str, terms: frozenset[str]) -> Iterator[Token]:
    """The tokens Whoosh's ``highlight`` makes of ``text`` (the analyzer with stop words
    kept, each token marked if it is a query term), in one pass instead of a chain of
    generators: most of the time of a snippet was there."""
    token = Token(chars=True, removestops=False, mode="query")
    token.boost = 1.0
    token.stopped = False
    for match in _word.finditer(text):
        token.text = analysed = _analysed(match.group())
        token.startchar, token.endchar = match.span()
        token.matched = analysed in terms
        yield token


def snippet(text: str, terms: frozenset[str], top: int = 2) -> str:
    """HTML-escaped text around the matched words, with the words in ``<mark>``: what
    ``whoosh.highlight.highlight`` gives with the index's analyzer, found faster (a text
    holding none of the terms is passed over on its distinct words)."""
    if not text or not terms or not any(_analysed(word) in terms
                                        for word in set(_word.findall(text))):
        return ""
    fragments = _fragmenter.fragment_tokens(text, _marked_tokens(text, terms))
    return _formatter(text, highlight.top_fragments(fragments, top, _scorer, highlight.FIRST))

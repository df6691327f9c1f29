"""Queries: what users type turned into an index query, glossary expansion, the policy's
visibility rule as an index query, and highlighting from the database's text.

The query language is Whoosh's (AND / OR / NOT, "phrases", wildcards, ``field:value``,
``date:[2022 to 2023]``, ``date:>2023``), parsed against a schema that holds only the
fields users may name, so ``releasable_to:`` or ``author_id:`` are read as plain words.
Plain words are then spread over the title (boosted) and the content, and phrases over
both fields' positions.

Staff describe problems in their own words, so a query of plain words is ranked rather
than read as an AND (``parse``): one word the lesson does not use must not empty the
page. What was searched (glossary equivalents, other spellings) and what is wrong with
the text (an empty field, unbalanced parentheses or quotes) come back with the query,
for the page and the API to say.
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
    Not,
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
    FILES,
    FILES_BOOST,
    QUERY_FIELDS,
    STOP_MIN_LENGTH,
    STOP_WORDS,
    TITLE,
    TITLE_BOOST,
    TOKEN_PATTERN,
    build_schema,
)
from lessons.search.spelling import canonical, fold_and_stem

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
    # A ranked query's plain words (or glossary terms), each a query of its own (over the
    # title and the content, with its equivalents): ``query`` asks for any of them, the
    # ranking counts how many a lesson holds. Empty for a strict query or a single word.
    clauses: list[Query] = field(default_factory=list)
    required: Query | None = None  # a ranked query's strict parts, all required
    # (typed, what it was also searched as): glossary equivalents and other spellings.
    expansions: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    counted: int = 0  # the words "no lesson holds all N words" counts
    problems: list[str] = field(default_factory=list)  # what is wrong with the text
    corrected: str = ""  # the text with its parentheses and quotes balanced

    def every_word(self) -> Query:
        """The lessons holding every ranked word (and the strict parts)."""
        parts = ([self.required] if self.required is not None else []) + self.clauses
        return And(parts)


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


@dataclass(frozen=True)
class Unit:
    """One thing a searcher typed, as searched: a word, or a run of words the glossary
    knows, with the glossary's other terms for it (what is shown as "also searched as")."""

    typed: str
    text: str  # in the query language: the word, or ``(typed OR other OR "other two")``
    others: tuple[str, ...] = ()


def _units(run: list[str], glossary: Glossary | None) -> list[Unit]:
    """The plain words of ``run`` (lexemes as typed), glossary terms among them grouped
    with their equivalents. A glossary term must cover whole typed words."""
    if glossary is None or not len(glossary):
        return [Unit(lexeme, lexeme) for lexeme in run]
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
    replaced: dict[int, tuple[int, Unit]] = {}
    for start, end, others in glossary.find_terms(words):
        if start not in starts or end not in ends or not others:
            continue  # the term covers part of a typed word only: leave it
        first, last = owner[start], owner[end - 1]
        if any(first <= at <= until for at, (until, _) in replaced.items()):
            continue  # inside a longer term already found
        typed = " ".join(run[first:last + 1])
        own = typed if first == last else f'"{typed}"'
        group = " OR ".join([own, *(_alternative(t) for t in others)])
        replaced[first] = (last, Unit(typed, f"({group})", tuple(others)))
    units: list[Unit] = []
    position = 0
    while position < len(run):
        if position in replaced:
            last, unit = replaced[position]
            units.append(unit)
            position = last + 1
        else:
            units.append(Unit(run[position], run[position]))
            position += 1
    return units


def _quoted_units(lexeme: str, glossary: Glossary | None) -> Unit:
    others = glossary.expansions(lexeme.strip('"')) if glossary is not None and \
        lexeme.startswith('"') and lexeme.endswith('"') and len(lexeme) > 2 else []
    if not others:
        return Unit(lexeme, lexeme)
    return Unit(lexeme.strip('"'), "(" + " OR ".join(
        [lexeme, *(_alternative(t) for t in others)]) + ")", tuple(others))


def expand(text: str, glossary: Glossary | None) -> str:
    """``text`` with each glossary term replaced by an OR of its group: "LNO reports"
    becomes ``(LNO OR LO OR "liaison officer") reports``.

    Works on the query's words as typed (operators, fields and wildcards are left alone),
    so the parser sees an ordinary query and the index needs no rebuild when the
    glossary changes.
    """
    if glossary is None or not len(glossary):
        return text
    return "".join(f"{' ' if spaced else ''}{unit.text}"
                   for spaced, unit in _expanded_units(text, glossary)).strip()


def _expanded_units(text: str, glossary: Glossary | None) -> list[tuple[bool, Unit]]:
    """The units of ``text`` (see ``_units``), each with whether a space preceded it
    (``field:"a phrase"`` must stay joined)."""
    out: list[tuple[bool, Unit]] = []
    run: list[str] = []
    run_spaced = False
    end = 0
    for match in _LEXEME.finditer(text):
        lexeme = match.group()
        spaced = match.start() > end
        end = match.end()
        if _plain_word(lexeme):
            if not run:
                run_spaced = spaced
            run.append(lexeme)
            continue
        out.extend((run_spaced or i > 0, unit) for i, unit in enumerate(_units(run, glossary)))
        run = []
        out.append((spaced, _quoted_units(lexeme, glossary)))
    out.extend((run_spaced or i > 0, unit) for i, unit in enumerate(_units(run, glossary)))
    return out


def _spread(query: Query) -> Query:
    """Plain words, phrases and wildcards on the content field also match the title,
    boosted, and the text of the lesson's attached files, weighed less."""
    if isinstance(query, Term) and query.fieldname == CONTENT:
        return Or([Term(TITLE, query.text, boost=TITLE_BOOST * query.boost),
                   Term(CONTENT, query.text, boost=query.boost),
                   Term(FILES, query.text, boost=FILES_BOOST * query.boost)])
    if isinstance(query, Phrase) and query.fieldname == CONTENT:
        words = list(query.words)
        if len(words) == 1:
            return _spread(Term(CONTENT, words[0], boost=query.boost))
        return Or([Phrase(TITLE, words, slop=query.slop, boost=TITLE_BOOST * query.boost),
                   query,
                   Phrase(FILES, words, slop=query.slop, boost=FILES_BOOST * query.boost)])
    if isinstance(query, (Wildcard, Prefix, FuzzyTerm)) and query.fieldname == CONTENT:
        title = query.copy()
        title.fieldname = TITLE
        title.boost = TITLE_BOOST * query.boost
        files = query.copy()
        files.fieldname = FILES
        files.boost = FILES_BOOST * query.boost
        return Or([title, query, files])
    if query.is_leaf():
        return query
    return query.apply(_spread)


def parse(text: str, glossary: Glossary | None = None) -> ParsedQuery:
    """Parse a user's query.

    Plain words are ranked, not all required (``_natural``): a lesson holding any of
    them matches, those holding more of them, in the title or close together rank
    higher. A query using the query language's operators or parentheses is read
    strictly, every word required, as the language says. In a query of plain words
    with some strict parts (``+word``, ``-word``, "a phrase", ``field:value``,
    ``wild*``), every strict part is required and the plain words are ranked among
    the lessons those parts allow: ``+radio cold weather`` finds the lessons holding
    "radio", best first those holding "cold" and "weather" too.

    A query the parser cannot read is searched as plain words, with a notice, never an
    error. Raises ``limits.TooBroad`` for a query that would cost more than one search
    may (see ``limits.check_shape``).
    """
    text = _ALIAS.sub(lambda m: QUERY_FIELDS[m.group(1)] + ":", text)
    text, problems = _empty_fields(text)
    try:
        if _strict(text):
            parsed = _parse_strict(text, glossary)
        else:
            parsed = _natural(text, glossary)
    # Whoosh's parser also fails with IndexError and others on inputs such as "<x": any
    # failure to read the text is the user's query, not a server error.
    except (QueryParserError, UnreadableQuery, ValueError, TypeError, IndexError,
            KeyError, AttributeError, RecursionError):
        parsed = _natural(_plain_words(text), glossary)
        parsed.notice = "Your query could not be read as written; searched for its words."
    check_shape(parsed.query)
    parsed.problems = problems + parsed.problems
    parsed.corrected = _balanced(text)
    if parsed.corrected:
        parsed.problems.append(_UNBALANCED)
    return parsed


_UNBALANCED = "A parenthesis or a quotation mark is not closed."
_EMPTY_FIELD = re.compile(r"(?<![\w:])(" + "|".join(sorted(_QUERY_NAMES)) + r"):(?=\s|\)|$)")
_SIGN = re.compile(r'(?<![\w:\-+])([+-])(?=[^\W_]|")')


def _empty_fields(text: str) -> tuple[str, list[str]]:
    """``text`` without fields given no value (``tag:`` alone), and what to say of them."""
    named = dict.fromkeys(_EMPTY_FIELD.findall(text))
    problems = [f"{name}: needs a value right after the colon, "
                f"e.g. {name}:{_EXAMPLES.get(name, 'word')}." for name in named]
    return (_EMPTY_FIELD.sub(" ", text).strip() if problems else text), problems


_EXAMPLES = {"tag": "liaison", "kind": "workaround", "status": "validated",
             "domain": "training", "function": "logistics", "nation": "GBR",
             "originator": "GBR", "unit": "brigade", "source_event": "exercise",
             "observed": "2024", "year": "2024", TITLE: "radio", "origin": "local"}


def _balanced(text: str) -> str:
    """``text`` with unclosed quotes and parentheses closed and stray closing ones
    dropped, or ``""`` when it is balanced already: the corrected query to offer."""
    out: list[str] = []
    depth = 0
    quoted = False
    for char in text:
        if char == '"':
            quoted = not quoted
        elif not quoted and char == "(":
            depth += 1
        elif not quoted and char == ")":
            if not depth:
                continue
            depth -= 1
        out.append(char)
    fixed = "".join(out).rstrip() + ('"' if quoted else "") + ")" * depth
    return fixed if fixed != text.strip() else ""


def _strict(text: str) -> bool:
    """Whether ``text`` uses the query language's operators, ranges or a field's group
    (``tag:(a OR b)``): then it is read as the language says, every plain word
    required. Parentheses alone are a sentence's ("crane (mobile) fell"), not a group."""
    lexemes = _LEXEME.findall(text)
    return any(lexeme in _OPERATORS or any(c in lexeme for c in "[]{}")
               or (lexeme.endswith(":") and following == "(")
               for lexeme, following in zip(lexemes, [*lexemes[1:], ""], strict=True))


def _parse_strict(text: str, glossary: Glossary | None) -> ParsedQuery:
    """Today's query language: words ANDed, ``+word`` required and ``-word`` excluded."""
    signed = _SIGN.sub(lambda m: "" if m.group(1) == "+" else "NOT ", text)
    words = [lexeme for lexeme in _LEXEME.findall(signed) if _plain_word(lexeme)]
    parsed = _parser().parse(expand(signed, glossary))
    if _has_errors(parsed):
        raise UnreadableQuery(text)
    units = [unit for _, unit in _expanded_units(signed, glossary)]
    return ParsedQuery(query=_spread(parsed), words=words, expansions=_expansions(units))


def _natural(text: str, glossary: Glossary | None) -> ParsedQuery:
    """Plain words ranked (each one a clause, a lesson holding any matches), strict
    parts required (see ``parse``)."""
    soft: list[Unit] = []
    hard: list[str] = []
    plus: list[bool] = []  # whether each hard part was marked "+"
    hard_units: list[Unit] = []
    run: list[str] = []
    words: list[str] = []
    sign = ""
    end = 0
    for match in _LEXEME.finditer(text):
        lexeme = match.group()
        attached = match.start() == end
        end = match.end()
        if sign and not attached:
            sign = ""  # a lone "+" or "-" between words is punctuation
        if lexeme in ("+", "-"):
            sign = lexeme
            continue
        if lexeme in ("(", ")"):
            continue  # a sentence's parentheses (a group would have an operator)
        if len(lexeme) > 1 and lexeme[0] in "+-" and (lexeme[1].isalnum() or lexeme[1] == '"'):
            sign, lexeme = lexeme[0], lexeme[1:]
        if ":" in lexeme and not lexeme.startswith('"') and \
                lexeme.split(":", 1)[0] not in _QUERY_NAMES:
            # "Problem: the crane", "at 3:00": a sentence's colon, not a field.
            words_of = [word for word in lexeme.split(":") if word]
            if words_of and not sign and all(_plain_word(word) for word in words_of):
                words.extend(words_of)
                run.extend(words_of)
                continue
            lexeme = " ".join(words_of)
            if not lexeme:
                continue
        if lexeme.endswith("?") and _plain_word(lexeme.rstrip("?")):
            lexeme = lexeme.rstrip("?")  # "still usable?" asks; it is no wildcard
            if not lexeme:
                continue
        if attached and hard and hard[-1].endswith(":"):
            hard[-1] += lexeme  # field:"a phrase"
            continue
        if _plain_word(lexeme):
            words.append(lexeme)
        if _plain_word(lexeme) and not sign:
            run.append(lexeme)
            continue
        soft.extend(_units(run, glossary))
        run = []
        unit = _units([lexeme], glossary)[0] if _plain_word(lexeme) else \
            _quoted_units(lexeme, glossary)
        hard_units.append(unit)
        hard.append(("NOT " if sign == "-" else "") + unit.text)
        plus.append(sign == "+")
        sign = ""
    soft.extend(_units(run, glossary))
    clauses: list[Query] = []
    kept: list[Unit] = []
    for unit in soft:
        clause = _parser().parse(unit.text)
        if _has_errors(clause):
            clause = _parser().parse(_plain_words(unit.typed))
        if clause is NullQuery or _has_errors(clause):
            continue  # a stop word
        clauses.append(_spread(clause))
        kept.append(unit)
    required = None
    if hard:
        required = _parser().parse(" ".join(hard))
        if _has_errors(required):
            raise UnreadableQuery(text)
        required = _spread(required)
        if required is NullQuery:
            required = None
    # With a "+word" the searcher has said what is required: the plain words only rank.
    ranked_only = required is not None and any(plus)
    parts = ([required] if required is not None else []) + (
        [clauses[0] if len(clauses) == 1 else Or(clauses)] if clauses and not ranked_only
        else [])
    whole = NullQuery if not parts else parts[0] if len(parts) == 1 else And(parts)
    keep_clauses = len(clauses) > 1 or (ranked_only and clauses)
    return ParsedQuery(query=whole, words=words, clauses=clauses if keep_clauses else [],
                       required=required, expansions=_expansions(kept + hard_units),
                       counted=len(clauses) + sum(plus))


def _expansions(units: list[Unit]) -> list[tuple[str, tuple[str, ...]]]:
    """What each typed word was also searched as: its glossary equivalents, and its
    other spelling (British words are searched in their American spelling)."""
    found: dict[str, tuple[str, tuple[str, ...]]] = {}
    for unit in units:
        typed = unit.typed.strip('"')
        others = list(unit.others)
        if not others:
            words = tokenize(typed)
            folded = " ".join(canonical(word) for word in words)
            if words and folded != " ".join(words):
                others = [folded]
        if others and typed.lower() not in found:
            found[typed.lower()] = (typed, tuple(others))
    return list(found.values())


def field_values(query: Query, fields: frozenset[str]) -> list[tuple[str, str]]:
    """(field, value) of every term of the query in one of ``fields``, in order, once
    each: what the search checks against the known values. (Dates and numbers are
    encoded terms, not values to name: ask only for keyword fields.)"""
    found: dict[tuple[str, str], None] = {}
    for fieldname, text in query.iter_all_terms():
        if fieldname in fields:
            text = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
            found[(fieldname, text)] = None
    return list(found)


def words_only(text: str) -> str:
    """The words of ``text`` without operators, fields, quotes, signs or wildcards: the
    query to offer when a strict one finds nothing."""
    text = _ALIAS.sub(lambda m: QUERY_FIELDS[m.group(1)] + ":", text)
    kept = []
    excluded = False
    for lexeme in _LEXEME.findall(text):
        if excluded or lexeme.startswith("-"):
            excluded = False
            continue  # a word asked to be absent
        if lexeme == "NOT":
            excluded = True
            continue
        lexeme = lexeme.strip('"').lstrip("+")
        if ":" in lexeme and lexeme.split(":", 1)[0] in _QUERY_NAMES:
            continue  # a field: a filter, not words
        kept.extend(word for word in re.findall(r"[^\W_]+(?:['\u2019][^\W_]+)*", lexeme)
                    if word not in _OPERATORS)
    return " ".join(kept)


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


@dataclass(frozen=True)
class Marks:
    """What snippets mark: single words, and phrases (a glossary's "liaison officer",
    a quoted phrase) marked only where the whole phrase stands, never one of its words
    alone. All analysed as the index analyses them."""

    words: frozenset[str] = frozenset()
    phrases: tuple[tuple[str, ...], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.words or self.phrases)

    @property
    def starts(self) -> frozenset[str]:
        """Words a text must hold for anything in it to be marked."""
        return self.words | {phrase[0] for phrase in self.phrases}


def highlight_terms(query: Query) -> Marks:
    """The analysed words and phrases of ``query`` that snippets should mark (not those
    it excludes)."""
    words: set[str] = set()
    phrases: set[tuple[str, ...]] = set()

    def walk(node: Query) -> None:
        if isinstance(node, Not):
            return
        if isinstance(node, Term) and node.fieldname in (TITLE, CONTENT, FILES):
            words.add(_text(node.text))
        elif isinstance(node, Phrase) and node.fieldname in (TITLE, CONTENT, FILES):
            phrase = tuple(_text(word) for word in node.words)
            if len(phrase) == 1:
                words.add(phrase[0])
            elif phrase:
                phrases.add(phrase)
        elif not node.is_leaf():
            for child in node.children():
                walk(child)

    walk(query)
    return Marks(frozenset(words), tuple(sorted(phrases)))


def _text(text: str | bytes) -> str:
    return text.decode("utf-8") if isinstance(text, bytes) else str(text)


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


def _marked_tokens(text: str, marks: Marks) -> Iterator[Token]:
    """The tokens Whoosh's ``highlight`` makes of ``text`` (the analyzer with stop words
    kept, each token marked if it is a query word or part of a whole query phrase), in
    one pass instead of a chain of generators: most of the time of a snippet was there.
    Phrases are matched over the words the index keeps (stop words skipped), as the
    index matched them."""
    found = [(match.span(), _analysed(match.group())) for match in _word.finditer(text)]
    marked = [analysed in marks.words for _, analysed in found]
    if marks.phrases:
        kept = [i for i, (_, analysed) in enumerate(found) if analysed not in STOP_WORDS
                and len(analysed) >= STOP_MIN_LENGTH]
        sequence = [found[i][1] for i in kept]
        by_start: dict[str, list[tuple[str, ...]]] = {}
        for phrase in marks.phrases:
            by_start.setdefault(phrase[0], []).append(phrase)
        for k, word in enumerate(sequence):
            for phrase in by_start.get(word, ()):
                if tuple(sequence[k:k + len(phrase)]) == phrase:
                    for i in kept[k:k + len(phrase)]:
                        marked[i] = True
    token = Token(chars=True, removestops=False, mode="query")
    token.boost = 1.0
    token.stopped = False
    for ((start, end), analysed), matched in zip(found, marked, strict=True):
        token.text = analysed
        token.startchar, token.endchar = start, end
        token.matched = matched
        yield token


def snippet(text: str, marks: Marks | frozenset[str], top: int = 2) -> str:
    """HTML-escaped text around the matched words, with the words in ``<mark>``: what
    ``whoosh.highlight.highlight`` gives with the index's analyzer, found faster (a text
    holding none of the words is passed over on its distinct words). ``marks`` may be
    a set of analysed words alone."""
    if not isinstance(marks, Marks):
        marks = Marks(frozenset(marks))
    if not text or not marks or not any(_analysed(word) in marks.starts
                                        for word in set(_word.findall(text))):
        return ""
    fragments = _fragmenter.fragment_tokens(text, _marked_tokens(text, marks))
    fragments = [fragment for fragment in fragments
                 if any(token.matched for token in fragment.matches)] \
        if marks.phrases else fragments
    if not fragments:
        return ""
    return _formatter(text, highlight.top_fragments(fragments, top, _scorer, highlight.FIRST))

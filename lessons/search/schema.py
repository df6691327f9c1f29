"""The index schema: ids, the words to match and what filters and facets need.

No field is stored for display: pages highlight the database's current text after the
policy has passed the hit, so an edit or a narrowed REL TO never shows stale text.

Matching uses two text fields, not one per O-D-C-R part: every extra field multiplies
the term look-ups of each query word, and nothing ranks by which part a word was in
except the title. (A field of adjacent word pairs would answer phrases with term
look-ups instead of a position walk, but it tripled the cost of indexing: Whoosh pays
per distinct term, and nearly every pair is distinct. Phrases use positions.)
"""

from __future__ import annotations

from whoosh.analysis import (
    STOP_WORDS as WHOOSH_STOP_WORDS,
)
from whoosh.analysis import (
    CompositeAnalyzer,
    LowercaseFilter,
    RegexTokenizer,
    StopFilter,
)
from whoosh.fields import DATETIME, ID, KEYWORD, NUMERIC, TEXT, Schema
from whoosh.formats import Positions

from lessons.search.spelling import SpellingStemFilter, fold_and_stem

# Bumped whenever a field or an analyzer changes: an index written under another version
# is reported as drifted, and `make run` rebuilds it.
SCHEMA_VERSION = 5

TITLE = "title"
CONTENT = "content"
TITLE_BOOST = 3.0
# The text of the lesson's attached files (``LessonFile.extracted_text``): matched by
# the same words as the content, weighed below the lesson's own text, and a field of its
# own so that a snippet can say a hit is in an attachment.
FILES = "files"
FILES_BOOST = 0.5

# The lesson's text that full-text queries match, besides the title (joined into CONTENT).
CONTENT_PARTS = ("observation", "discussion", "conclusion", "recommendation",
                 "friction", "workaround", "limits")

# Facet fields, in the order the search page shows them.
FACETS = ("kind", "status", "domain", "function", "nation", "originator", "origin", "tag",
          "year")
# Where a lesson came from (``origin``): the Muster instance it was received from, or
# LOCAL_ORIGIN for this instance's own lessons; lower-cased like every keyword.
LOCAL_ORIGIN = "local"
# Query-language field names (what users type before the colon) -> index fields.
QUERY_FIELDS = {
    "tag": "tag", "kind": "kind", "status": "status", "domain": "domain",
    "function": "function", "nation": "nation", "originator": "originator",
    "unit": "unit", "source_event": "source_event", "event": "source_event",
    "date": "observed", "observed": "observed", "year": "year", "title": TITLE,
    "origin": "origin",
}
TOKEN_PATTERN = r"[^\W_]+(?:['\u2019.][^\W_]+)*"
# Whoosh's English stop words, but "us" is the United States in these lessons; words
# shorter than STOP_MIN_LENGTH are stopped too (StopFilter's default minimum size).
STOP_WORDS = frozenset(WHOOSH_STOP_WORDS - {"us"})
STOP_MIN_LENGTH = 2


class TextAnalyzer(CompositeAnalyzer):
    """Lower-cased, stop-worded, British spellings folded onto American ones and
    Porter-stemmed: "refuelling" finds "refuel", "defence" finds "defense". (No stop
    word has a second spelling, so stopping before folding changes nothing.)

    Queries, highlighting and suggestions run the chain of Whoosh filters as usual.
    Indexing asks ``index_positions`` instead: the same terms at the same positions in
    one loop, without a generator and a token per filter per word (analysis is about
    half the CPU of indexing lesson text)."""

    def __init__(self) -> None:
        super().__init__(RegexTokenizer(TOKEN_PATTERN), LowercaseFilter(),
                         StopFilter(stoplist=STOP_WORDS, minsize=STOP_MIN_LENGTH),
                         SpellingStemFilter())

    def index_positions(self, value: str) -> dict[str, list[int]]:
        """Each term of ``value`` with its positions, in order of first appearance, as
        the filter chain numbers them: stop words take no position (``StopFilter``
        renumbers), except that the first kept word keeps its own. The tokenizer's
        pattern and the stop filter's words are the chain's own."""
        tokenizer, _, stop_filter, _ = self.items
        stops, minsize = stop_filter.stops, stop_filter.min
        found: dict[str, list[int]] = {}
        pos = -1
        for n, match in enumerate(tokenizer.expression.finditer(value)):
            word = match.group(0).lower()
            if len(word) < minsize or word in stops:
                continue
            pos = n if pos < 0 else pos + 1
            term = fold_and_stem(word)
            positions = found.get(term)
            if positions is None:
                found[term] = [pos]
            else:
                positions.append(pos)
        return found


class TermPositions(Positions):
    """Whoosh's ``Positions`` (the same bytes on disk), fed by ``TextAnalyzer``'s
    one-loop indexing path when it is the field's analyzer."""

    def word_values(self, value, analyzer, **kwargs):
        index_positions = getattr(analyzer, "index_positions", None)
        if (index_positions is None or not isinstance(value, str)
                or kwargs.keys() - {"mode"} or kwargs.get("mode", "index") != "index"):
            yield from super().word_values(value, analyzer, **kwargs)
            return
        boost = self.field_boost
        for term, positions in index_positions(value).items():
            yield term, len(positions), float(len(positions)) * boost, self.encode(positions)


def text_analyzer() -> TextAnalyzer:
    return TextAnalyzer()


def plain_analyzer():
    """Lower-cased words, nothing folded: unit and source event names are names."""
    return RegexTokenizer(TOKEN_PATTERN) | LowercaseFilter()


def _text_field() -> TEXT:
    field = TEXT(analyzer=text_analyzer(), phrase=True)
    field.format = TermPositions(field_boost=field.format.field_boost)
    return field


def build_schema() -> Schema:
    keyword = {"commas": True, "lowercase": True, "scorable": False}
    return Schema(
        lesson_id=ID(stored=True, unique=True),
        version=NUMERIC(stored=True),
        schema_version=NUMERIC(stored=True),
        title=_text_field(),
        content=_text_field(),
        files=_text_field(),
        tag=KEYWORD(**keyword),
        kind=KEYWORD(lowercase=True, scorable=False),
        status=KEYWORD(lowercase=True, scorable=False),
        domain=KEYWORD(**keyword),
        function=KEYWORD(**keyword),
        nation=KEYWORD(**keyword),
        originator=KEYWORD(lowercase=True, scorable=False),
        # One value per lesson, an instance name kept whole ("gbr-army"): as ``originator``.
        origin=KEYWORD(lowercase=True, scorable=False),
        unit=TEXT(analyzer=plain_analyzer(), phrase=True),
        source_event=TEXT(analyzer=plain_analyzer(), phrase=True),
        observed=DATETIME(sortable=True),
        year=KEYWORD(scorable=False),
        releasable_to=KEYWORD(lowercase=True, scorable=False),
        author_id=ID,
    )


__all__ = ["CONTENT", "CONTENT_PARTS", "FACETS", "FILES", "FILES_BOOST", "LOCAL_ORIGIN",
           "QUERY_FIELDS",
           "SCHEMA_VERSION", "TITLE", "TITLE_BOOST", "build_schema",
           "plain_analyzer", "text_analyzer"]

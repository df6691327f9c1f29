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
    LowercaseFilter,
    RegexTokenizer,
    StopFilter,
)
from whoosh.fields import DATETIME, ID, KEYWORD, NUMERIC, TEXT, Schema

from lessons.search.spelling import SpellingStemFilter

# Bumped whenever a field or an analyzer changes: an index written under another version
# is reported as drifted, and `make run` rebuilds it.
SCHEMA_VERSION = 3

TITLE = "title"
CONTENT = "content"
TITLE_BOOST = 3.0

# The lesson's text that full-text queries match, besides the title (joined into CONTENT).
CONTENT_PARTS = ("observation", "discussion", "conclusion", "recommendation",
                 "friction", "workaround", "limits")

# Facet fields, in the order the search page shows them.
FACETS = ("kind", "status", "domain", "function", "nation", "originator", "tag", "year")
# Query-language field names (what users type before the colon) -> index fields.
QUERY_FIELDS = {
    "tag": "tag", "kind": "kind", "status": "status", "domain": "domain",
    "function": "function", "nation": "nation", "originator": "originator",
    "unit": "unit", "source_event": "source_event", "event": "source_event",
    "date": "observed", "observed": "observed", "year": "year", "title": TITLE,
}
TOKEN_PATTERN = r"[^\W_]+(?:['\u2019.][^\W_]+)*"
# Whoosh's English stop words, but "us" is the United States in these lessons; words
# shorter than STOP_MIN_LENGTH are stopped too (StopFilter's default minimum size).
STOP_WORDS = frozenset(WHOOSH_STOP_WORDS - {"us"})
STOP_MIN_LENGTH = 2


def text_analyzer():
    """Lower-cased, stop-worded, British spellings folded onto American ones and
    Porter-stemmed: "refuelling" finds "refuel", "defence" finds "defense". (No stop
    word has a second spelling, so stopping before folding changes nothing.)"""
    return (RegexTokenizer(TOKEN_PATTERN) | LowercaseFilter()
            | StopFilter(stoplist=STOP_WORDS, minsize=STOP_MIN_LENGTH) | SpellingStemFilter())


def plain_analyzer():
    """Lower-cased words, nothing folded: unit and source event names are names."""
    return RegexTokenizer(TOKEN_PATTERN) | LowercaseFilter()


def build_schema() -> Schema:
    keyword = {"commas": True, "lowercase": True, "scorable": False}
    return Schema(
        lesson_id=ID(stored=True, unique=True),
        version=NUMERIC(stored=True),
        schema_version=NUMERIC(stored=True),
        title=TEXT(analyzer=text_analyzer(), phrase=True),
        content=TEXT(analyzer=text_analyzer(), phrase=True),
        tag=KEYWORD(**keyword),
        kind=KEYWORD(lowercase=True, scorable=False),
        status=KEYWORD(lowercase=True, scorable=False),
        domain=KEYWORD(**keyword),
        function=KEYWORD(**keyword),
        nation=KEYWORD(**keyword),
        originator=KEYWORD(lowercase=True, scorable=False),
        unit=TEXT(analyzer=plain_analyzer(), phrase=True),
        source_event=TEXT(analyzer=plain_analyzer(), phrase=True),
        observed=DATETIME(sortable=True),
        year=KEYWORD(scorable=False),
        releasable_to=KEYWORD(lowercase=True, scorable=False),
        author_id=ID,
    )


__all__ = ["CONTENT", "CONTENT_PARTS", "FACETS", "QUERY_FIELDS",
           "SCHEMA_VERSION", "TITLE", "TITLE_BOOST", "build_schema",
           "plain_analyzer", "text_analyzer"]

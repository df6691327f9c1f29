"""The index schema: ids, the words to match and what filters and facets need.

No field is stored for display: pages highlight the database's current text after the
policy has passed the hit, so an edit or a narrowed REL TO never shows stale text.
"""

from __future__ import annotations

from whoosh.analysis import StemmingAnalyzer
from whoosh.fields import DATETIME, ID, KEYWORD, NUMERIC, TEXT, Schema

# The parts of a lesson that full-text queries match, with their weight in ranking.
TEXT_FIELDS: dict[str, float] = {
    "title": 3.0,
    "observation": 1.0,
    "discussion": 1.0,
    "conclusion": 1.0,
    "recommendation": 1.0,
    "friction": 1.0,
    "workaround": 1.0,
    "limits": 1.0,
}


def text_analyzer():
    """Lower-cased, stop-worded and Porter-stemmed: "refuelling" finds "refuel"."""
    return StemmingAnalyzer()


def build_schema() -> Schema:
    analyzer = text_analyzer()
    keyword = {"commas": True, "lowercase": True, "scorable": False}
    return Schema(
        lesson_id=ID(stored=True, unique=True),
        version=NUMERIC(stored=True),
        **{name: TEXT(analyzer=analyzer, phrase=True) for name in TEXT_FIELDS},
        tag=KEYWORD(**keyword),
        kind=ID,
        status=ID,
        domain=KEYWORD(**keyword),
        function=KEYWORD(**keyword),
        nation=KEYWORD(**keyword),
        unit=KEYWORD(**keyword),
        source_event=KEYWORD(**keyword),
        observed=DATETIME,
        originator=ID,
        releasable_to=KEYWORD(scorable=False),
        author_id=ID,
    )

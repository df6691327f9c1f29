"""Trends for the dashboard: how lessons move, where they stall, what keeps coming back
and what cannot be shared. Reads only.

Every figure starts from one set of lesson ids: ``policy.visible_lessons`` for the
viewer, narrowed by the page's filters (``TrendFilter``). A lesson the viewer may not
see is in no count, median, group or list, so it moves no figure. Exercise figures also
count only exercises the viewer takes part in (``policy.visible_exercises``).

The work is bounded whatever the number of lessons: every figure is a GROUP BY in the
database that returns at most (months or days) x (statuses, kinds, nations, domains)
rows; medians are taken from those histograms, never from one row per lesson. The one
exception is recurrence, which looks at a fixed handful of recent lessons
(``RECURRENCE_RECENT``) through the search index's related-lessons ranking.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import (
    Integer,
    Select,
    Text,
    and_,
    case,
    cast,
    distinct,
    extract,
    func,
    literal,
    or_,
    select,
    union_all,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ColumnElement, FunctionElement

from lessons import policy
from lessons.extensions import db
from lessons.models import (
    AuditRecord,
    Exercise,
    ExerciseLesson,
    ExerciseNation,
    Lesson,
    ReleaseRequest,
)
from lessons.models.base import utcnow
from lessons.models.lesson import (
    LessonDomain,
    LessonNation,
    LessonRelease,
    RemedialAction,
    Tag,
    lesson_tags,
)
from lessons.rules import DOMAINS, KINDS, STATUSES
from lessons.search import related
from lessons.services.lessons import overdue_action
from lessons.services.nations import nation_codes
from lessons.services.packets import PACKET_STATUSES  # attached lessons a packet carries

PIPELINE_STEPS = ("proposed", "accepted", "incorporated", "effective", "not_effective")
# Recurrence: the most recent lessons looked at, the candidates ranked for each, and the
# share of a lesson's key terms another must hold to count as the same problem again.
RECURRENCE_RECENT = 10
RECURRENCE_CANDIDATES = 10
RECURRENCE_COVERAGE = 0.5
RECURRENCE_STATUSES = tuple(sorted(policy.SHARED_STATUSES))
# More periods than this are shown by year instead of by quarter.
QUARTERS_MAX = 16
WITHHELD_TAGS_SHOWN = 15
NO_OWNER = "—"


# --- the filters -----------------------------------------------------------------------------
@dataclass(frozen=True)
class TrendFilter:
    """The dashboard's filters, already checked (``parse_filter``): a nation involved in
    what happened, a domain, and a range of the lessons' dates (the day observed, or
    the day written when no observation date was given)."""

    nation: str = ""
    domain: str = ""
    since: date | None = None
    until: date | None = None

    def query_args(self) -> dict[str, str]:
        args = {"nation": self.nation, "domain": self.domain,
                "from": self.since.isoformat() if self.since else "",
                "to": self.until.isoformat() if self.until else ""}
        return {key: value for key, value in args.items() if value}


FILTER_MAX = 20  # characters of any one filter value read from the URL


def _parse_day(raw: str, label: str, problems: list[str]) -> date | None:
    raw = raw.strip()
    if not raw:
        return None
    try:
        if len(raw) > FILTER_MAX:
            raise ValueError
        return date.fromisoformat(raw)
    except ValueError:
        shown = raw if len(raw) <= FILTER_MAX else raw[:FILTER_MAX] + "…"
        problems.append(f"The {label} date \u201c{shown}\u201d is not a date like 2026-03-31, "
                        f"so it was left out.")
        return None


def parse_filter(args: Mapping[str, str]) -> tuple[TrendFilter, list[str]]:
    """The filters from a query string, and a message for each value left out. A value
    that is not allowed never fails the page: it is ignored and said so."""
    problems: list[str] = []
    nation = (args.get("nation") or "").strip().upper()
    if nation and (len(nation) > FILTER_MAX or nation not in nation_codes()):
        problems.append("That nation is not one Muster knows, so it was left out.")
        nation = ""
    domain = (args.get("domain") or "").strip()
    if domain and domain not in DOMAINS:
        problems.append("That domain is not one Muster knows, so it was left out.")
        domain = ""
    since = _parse_day(args.get("from") or "", "from", problems)
    until = _parse_day(args.get("to") or "", "to", problems)
    if since and until and since > until:
        problems.append("The from date is after the to date, so the dates were left out.")
        since = until = None
    return TrendFilter(nation=nation, domain=domain, since=since, until=until), problems


# --- SQL helpers -----------------------------------------------------------------------------
class days_between(FunctionElement):  # noqa: N801 - reads as the SQL function it stands for
    """Whole days from the first timestamp to the second, on SQLite and PostgreSQL."""

    type = Integer()
    inherit_cache = True


@compiles(days_between)
def _days_sqlite(element, compiler, **kw) -> str:
    start, end = (compiler.process(arg, **kw) for arg in element.clauses)
    return f"CAST(julianday({end}) - julianday({start}) AS INTEGER)"


@compiles(days_between, "postgresql")
def _days_postgresql(element, compiler, **kw) -> str:
    start, end = (compiler.process(arg, **kw) for arg in element.clauses)
    return f"CAST(FLOOR(EXTRACT(EPOCH FROM ({end} - {start})) / 86400) AS INTEGER)"


def lesson_day() -> ColumnElement:
    """The day a lesson is dated by on the dashboard: observed, else written."""
    return func.coalesce(Lesson.observed_on, func.date(Lesson.created_at))


def visible_ids(user, flt: TrendFilter) -> Select:
    """The ids of the lessons ``user`` may see that the filters keep: every figure's base."""
    query = select(Lesson.id).where(policy.visible_lessons(user))
    if flt.nation:
        query = query.where(Lesson.nation_rows.any(LessonNation.nation_code == flt.nation))
    if flt.domain:
        query = query.where(Lesson.domain_rows.any(LessonDomain.slug == flt.domain))
    if flt.since:
        query = query.where(lesson_day() >= flt.since)
    if flt.until:
        query = query.where(lesson_day() <= flt.until)
    return query


def _visible_exercise_ids(user) -> Select:
    return select(Exercise.id).where(policy.visible_exercises(user))


# --- the figures -----------------------------------------------------------------------------
@dataclass
class Series:
    """Counts per period for each of a set of keys (statuses, kinds or domains)."""

    periods: list[str]
    keys: list[str]
    counts: dict[str, list[int]]  # key -> one count per period

    @property
    def totals(self) -> list[int]:
        """Each period's count over all keys."""
        return [sum(self.counts[key][i] for key in self.keys) for i in range(len(self.periods))]

    @property
    def empty(self) -> bool:
        return not self.periods


@dataclass
class Median:
    group: str  # a nation code or a domain slug
    lessons: int
    days: float


@dataclass
class Medians:
    submitted_validated: list[Median]
    validated_learned: list[Median]

    @property
    def rows(self) -> list[tuple[str, Median | None, Median | None]]:
        """Each group with its two medians (``None`` where it has none), in order: the
        table's rows and the chart's bars, so the two cannot list different groups."""
        first = {m.group: m for m in self.submitted_validated}
        second = {m.group: m for m in self.validated_learned}
        return [(group, first.get(group), second.get(group))
                for group in dict.fromkeys([*first, *second])]


@dataclass
class Overdue:
    nation: str  # the owner nation, or NO_OWNER
    actions: int
    lessons: int
    oldest_due: date


@dataclass
class RecurrenceGroup:
    """Lessons from different events that look like the same problem, newest first."""

    lessons: list[Lesson]

    @property
    def events(self) -> list[str]:
        return list(dict.fromkeys(lesson.source_event for lesson in self.lessons))


@dataclass
class Pipeline:
    steps: dict[str, int]  # PIPELINE_STEPS -> attached lessons at that step
    pending_confirmation: int

    @property
    def total(self) -> int:
        return sum(self.steps.values())

    @property
    def decided(self) -> int:
        return self.steps["effective"] + self.steps["not_effective"]


@dataclass
class NationBarrier:
    nation: str
    withheld: int  # attachments (an exercise and a lesson) the nation lacks release for
    lessons: int  # distinct lessons among them
    asked: int = 0  # release requests naming the nation
    approved: int = 0
    declined: int = 0
    waiting: int = 0
    median_days: float | None = None  # to decide, for the decided requests


@dataclass
class Barriers:
    nations: list[NationBarrier]
    requests: dict[str, int]  # pending / approved / declined -> requests
    median_days: float | None  # to decide, all decided requests
    tags: list[tuple[str, int]]  # of lessons withheld from some participant
    domains: list[tuple[str, int]]

    @property
    def asked(self) -> int:
        return sum(self.requests.values())


@dataclass
class Trends:
    filter: TrendFilter
    lessons: int
    by_status: Series
    by_kind: Series
    by_domain: Series
    medians_by_nation: Medians
    medians_by_domain: Medians
    overdue: list[Overdue]
    recurrence: list[RecurrenceGroup]
    pipeline: Pipeline
    barriers: Barriers
    today: date = field(default_factory=lambda: utcnow().date())


def trends(user, flt: TrendFilter) -> Trends:
    """Every figure of the dashboard for ``user`` under ``flt``."""
    ids = visible_ids(user, flt).cte("visible")
    base = select(ids.c.id)
    today = utcnow().date()
    by_status, by_kind, by_domain = _over_time(base)
    by_nation, by_domain_medians = _medians(base)
    return Trends(
        filter=flt,
        lessons=sum(by_status.totals),  # every lesson has one status
        by_status=by_status, by_kind=by_kind, by_domain=by_domain,
        medians_by_nation=by_nation, medians_by_domain=by_domain_medians,
        overdue=_overdue(base, today),
        recurrence=_recurrence(user, base),
        pipeline=_pipeline(user, base),
        barriers=_barriers(user, base),
        today=today,
    )


# --- over time --------------------------------------------------------------------------------
def _over_time(base: Select) -> tuple[Series, Series, Series]:
    day = lesson_day()
    year, month = extract("year", day).label("year"), extract("month", day).label("month")
    rows = db.session.execute(
        select(year, month, Lesson.status, Lesson.kind, func.count())
        .where(Lesson.id.in_(base)).group_by(year, month, Lesson.status, Lesson.kind)).all()
    domain_rows = db.session.execute(
        select(year, month, LessonDomain.slug, func.count())
        .join(LessonDomain, LessonDomain.lesson_id == Lesson.id)
        .where(Lesson.id.in_(base)).group_by(year, month, LessonDomain.slug)).all()
    months = {(int(y), int(m)) for y, m, *_ in rows}
    label = _period_labels(months)
    status: Counter[tuple[str, str]] = Counter()
    kind: Counter[tuple[str, str]] = Counter()
    for y, m, st, kd, count in rows:
        status[(label[(int(y), int(m))], st)] += count
        kind[(label[(int(y), int(m))], kd)] += count
    domain: Counter[tuple[str, str]] = Counter()
    for y, m, slug, count in domain_rows:
        domain[(label[(int(y), int(m))], slug)] += count
    periods = list(dict.fromkeys(label[key] for key in sorted(months)))
    return (_series(periods, STATUSES, status), _series(periods, KINDS, kind),
            _series(periods, DOMAINS, domain))


def _period_labels(months: Iterable[tuple[int, int]]) -> dict[tuple[int, int], str]:
    """Each (year, month) as its quarter ("2026 Q1"), or as its year when the quarters
    would be too many to read."""
    months = sorted(months)
    if not months:
        return {}
    first, last = months[0], months[-1]
    quarters = (last[0] - first[0]) * 4 + (last[1] - 1) // 3 - (first[1] - 1) // 3 + 1
    if quarters > QUARTERS_MAX:
        return {(y, m): str(y) for y, m in months}
    return {(y, m): f"{y} Q{(m - 1) // 3 + 1}" for y, m in months}


def _series(periods: list[str], keys: Iterable[str], counts: Counter) -> Series:
    # Every key, even one with no lesson: a key keeps its column and its colour.
    keys = list(keys)
    return Series(periods=periods, keys=keys,
                  counts={key: [counts[(p, key)] for p in periods] for key in keys})


# --- medians ----------------------------------------------------------------------------------
def _medians(base: Select) -> tuple[Medians, Medians]:
    """Median days from first submission to first validation, and from first validation
    to first "learned", by originator nation and by domain. One statement: each lesson's
    first dates in one pass over its trail, then a histogram of whole days per group."""
    firsts = (select(AuditRecord.lesson_id.label("lesson_id"),
                     *(func.min(case((AuditRecord.action == action, AuditRecord.created_at)))
                       .label(action) for action in ("submitted", "validated", "learned")))
              .where(AuditRecord.action.in_(("submitted", "validated", "learned")),
                     AuditRecord.lesson_id.in_(base))
              .group_by(AuditRecord.lesson_id).cte("firsts"))
    parts = []
    for by, group, joined in (
            ("nation", Lesson.originator_nation, (Lesson, Lesson.id == firsts.c.lesson_id)),
            ("domain", LessonDomain.slug,
             (LessonDomain, LessonDomain.lesson_id == firsts.c.lesson_id))):
        for span, start, end in (("sv", firsts.c.submitted, firsts.c.validated),
                                 ("vl", firsts.c.validated, firsts.c.learned)):
            days = days_between(start, end)
            parts.append(select(literal(f"{by}-{span}").label("figure"),
                                group.label("grp"), days.label("days"), func.count())
                         .select_from(firsts).join(*joined).where(end >= start)
                         .group_by(group, days))
    histograms: dict[str, dict[str, Counter[int]]] = defaultdict(lambda: defaultdict(Counter))
    for figure, key, day_count, count in db.session.execute(union_all(*parts)).all():
        histograms[figure][key][max(0, int(day_count))] += count

    def rows(figure: str, order: Iterable[str]) -> list[Median]:
        found = histograms[figure]
        return [Median(group=key, lessons=sum(found[key].values()), days=median(found[key]))
                for key in order if key in found]

    nations = sorted(set(histograms["nation-sv"]) | set(histograms["nation-vl"]))
    return (Medians(rows("nation-sv", nations), rows("nation-vl", nations)),
            Medians(rows("domain-sv", DOMAINS), rows("domain-vl", DOMAINS)))


def median(histogram: Mapping[int, int]) -> float:
    """The median of values given as value -> how many times (the mean of the middle
    two for an even count)."""
    total = sum(histogram.values())
    if not total:
        return 0.0
    wanted = [(total - 1) // 2, total // 2]
    found: list[int] = []
    seen = 0
    for value in sorted(histogram):
        seen += histogram[value]
        while wanted and wanted[0] < seen:
            found.append(value)
            wanted.pop(0)
    return sum(found) / 2


# --- overdue actions --------------------------------------------------------------------------
def _overdue(base: Select, today: date) -> list[Overdue]:
    owner = func.coalesce(RemedialAction.owner_nation, "")
    rows = db.session.execute(
        select(owner, func.count(), func.count(distinct(RemedialAction.lesson_id)),
               func.min(RemedialAction.due_on))
        .join(Lesson, Lesson.id == RemedialAction.lesson_id)
        .where(RemedialAction.lesson_id.in_(base), overdue_action(today))
        .group_by(owner)).all()
    found = [Overdue(nation=nation or NO_OWNER, actions=actions, lessons=lessons,
                     oldest_due=_as_date(oldest)) for nation, actions, lessons, oldest in rows]
    return sorted(found, key=lambda o: (-o.actions, o.nation))


def _as_date(value) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


# --- recurrence -------------------------------------------------------------------------------
def _event(lesson: Lesson) -> str:
    return " ".join(lesson.source_event.split()).casefold()


def _recurrence(user, base: Select) -> list[RecurrenceGroup]:
    """For the most recent lessons with a source event, the lesson most like each (by
    the related-lessons ranking, over lessons ``user`` may see) from another event,
    when it holds enough of its key terms; pairs sharing a lesson are one group."""
    recent = list(db.session.scalars(
        select(Lesson).where(Lesson.id.in_(base), Lesson.source_event != "",
                             Lesson.status.in_(RECURRENCE_STATUSES))
        .order_by(lesson_day().desc(), Lesson.id.desc()).limit(RECURRENCE_RECENT)))
    pairs: list[tuple[int, int]] = []
    wanted: dict[int, list[int]] = {}
    for lesson in recent:
        text = f"{lesson.title}\n\n{related.lesson_text(lesson)}"
        wanted[lesson.id] = [
            lesson_id for lesson_id, _, coverage in related.text_scores(
                user, text, RECURRENCE_CANDIDATES, RECURRENCE_STATUSES)
            if lesson_id != lesson.id and coverage >= RECURRENCE_COVERAGE]
    candidate_ids = {i for ids in wanted.values() for i in ids}
    # The database is the truth: only lessons the filters (and the policy) keep.
    candidates = {c.id: c for c in db.session.scalars(
        select(Lesson).where(Lesson.id.in_(candidate_ids), Lesson.id.in_(base),
                             Lesson.source_event != ""))} if candidate_ids else {}
    by_id = {lesson.id: lesson for lesson in recent} | candidates
    for lesson in recent:
        match = next((candidates[i] for i in wanted[lesson.id] if i in candidates
                      and _event(candidates[i]) != _event(lesson)
                      and policy.can_view(user, candidates[i])), None)
        if match is not None:
            pairs.append((lesson.id, match.id))
    return _groups(pairs, by_id)


def _groups(pairs: list[tuple[int, int]], by_id: dict[int, Lesson]) -> list[RecurrenceGroup]:
    parent: dict[int, int] = {}

    def root(i: int) -> int:
        while parent.setdefault(i, i) != i:
            i = parent[i]
        return i

    for a, b in pairs:
        parent[root(a)] = root(b)
    members: dict[int, list[Lesson]] = defaultdict(list)
    for i in parent:
        members[root(i)].append(by_id[i])

    def newest(lesson: Lesson) -> tuple:
        return (lesson.observed_on or lesson.created_at.date(), lesson.id)

    groups = [RecurrenceGroup(sorted(found, key=newest, reverse=True))
              for found in members.values()]
    return sorted(groups, key=lambda g: newest(g.lessons[0]), reverse=True)


# --- exercises: the pipeline and releasability barriers -------------------------------------
def _links(user, base: Select) -> ColumnElement[bool]:
    return and_(ExerciseLesson.lesson_id.in_(base),
                ExerciseLesson.exercise_id.in_(_visible_exercise_ids(user)))


def _pipeline(user, base: Select) -> Pipeline:
    rows = dict(db.session.execute(
        select(ExerciseLesson.status, func.count()).where(_links(user, base))
        .group_by(ExerciseLesson.status)).all())
    pending = db.session.scalar(select(func.count()).select_from(ExerciseLesson).where(
        _links(user, base), ExerciseLesson.confirmation == "pending")) or 0
    return Pipeline(steps={step: rows.get(step, 0) for step in PIPELINE_STEPS},
                    pending_confirmation=pending)


def _withheld_where(user, base: Select) -> ColumnElement[bool]:
    """An attached lesson a participant of its exercise may not receive."""
    released = select(LessonRelease.lesson_id).where(
        LessonRelease.lesson_id == ExerciseLesson.lesson_id,
        LessonRelease.nation_code == ExerciseNation.nation_code).exists()
    return and_(_links(user, base), ExerciseLesson.status.in_(sorted(PACKET_STATUSES)), ~released)


def _barriers(user, base: Select) -> Barriers:
    withheld = _withheld_where(user, base)
    joined = select().select_from(ExerciseLesson).join(
        ExerciseNation, ExerciseNation.exercise_id == ExerciseLesson.exercise_id)
    nations = {nation: NationBarrier(nation, pairs, lessons) for nation, pairs, lessons in
               db.session.execute(joined.add_columns(
                   ExerciseNation.nation_code, func.count(),
                   func.count(distinct(ExerciseLesson.lesson_id)))
                   .where(withheld).group_by(ExerciseNation.nation_code)).all()}
    withheld_ids = joined.add_columns(ExerciseLesson.lesson_id).where(withheld)
    tags = [(name, count) for name, count in db.session.execute(
        select(Tag.name, func.count(distinct(lesson_tags.c.lesson_id)).label("n"))
        .join(lesson_tags, lesson_tags.c.tag_id == Tag.id)
        .where(lesson_tags.c.lesson_id.in_(withheld_ids))
        .group_by(Tag.name).order_by(func.count(distinct(lesson_tags.c.lesson_id)).desc(),
                                     Tag.name).limit(WITHHELD_TAGS_SHOWN)).all()]
    domain_counts = dict(db.session.execute(
        select(LessonDomain.slug, func.count(distinct(LessonDomain.lesson_id)))
        .where(LessonDomain.lesson_id.in_(withheld_ids)).group_by(LessonDomain.slug)).all())
    domains = [(slug, domain_counts[slug]) for slug in DOMAINS if slug in domain_counts]

    # Release requests: about lessons the viewer may see, from exercises they take part
    # in (or whose exercise is gone). Grouped by the nations asked for, as stored.
    asked = cast(ReleaseRequest.nations, Text)
    days = days_between(ReleaseRequest.created_at, ReleaseRequest.decided_at)
    rows = db.session.execute(
        select(asked, ReleaseRequest.status, days, func.count())
        .where(ReleaseRequest.lesson_id.in_(base),
               or_(ReleaseRequest.exercise_id.is_(None),
                   ReleaseRequest.exercise_id.in_(_visible_exercise_ids(user))))
        .group_by(asked, ReleaseRequest.status, days)).all()
    requests: Counter[str] = Counter()
    all_days: Counter[int] = Counter()
    nation_days: dict[str, Counter[int]] = defaultdict(Counter)
    for raw, status, day_count, count in rows:
        requests[status] += count
        decided = status in ("approved", "declined") and day_count is not None
        if decided:
            all_days[max(0, int(day_count))] += count
        for nation in _codes(raw):
            entry = nations.setdefault(nation, NationBarrier(nation, 0, 0))
            entry.asked += count
            if status == "approved":
                entry.approved += count
            elif status == "declined":
                entry.declined += count
            else:
                entry.waiting += count
            if decided:
                nation_days[nation][max(0, int(day_count))] += count
    for nation, histogram in nation_days.items():
        nations[nation].median_days = median(histogram)
    return Barriers(
        nations=sorted(nations.values(), key=lambda n: (-n.withheld, -n.asked, n.nation)),
        requests={status: requests[status] for status in ("pending", "approved", "declined")},
        median_days=median(all_days) if all_days else None,
        tags=tags, domains=domains)


def _codes(raw) -> list[str]:
    try:
        value = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        return []
    return sorted({str(code) for code in value or [] if code})

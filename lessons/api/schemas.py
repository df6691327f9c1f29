"""The API's request and response schemas: what the code validates bodies with, what it
serialises responses through, and what the OpenAPI document is generated from.

Shapes, types, allowed values and lengths come from ``lessons.rules`` (the one rule
set); rules that need the database (known nations, objectives of an exercise, the
status table) are the services' and come back as 409/422 problems like any other.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints
from pydantic.json_schema import JsonSchemaValue

from lessons.api import API_MAX_BODY
from lessons.rules import (
    ACTIONS_MAX,
    DESCRIPTION_MAX,
    DOMAINS,
    EXERCISE_NAME_MAX,
    EXERCISE_TYPES,
    FUNCTIONS,
    KINDS,
    LINK_STATUSES,
    MILESTONES_MAX,
    NATIONS_MAX,
    NOTE_MAX,
    OBJECTIVE_MAX,
    OBJECTIVES_MAX,
    PAGE_MAX,
    PER_PAGE_MAX,
    PERMANENCE,
    PLANNERS_MAX,
    PURPOSES,
    QUERY_MAX,
    QUERY_NOTES_MAX,
    SHORT_MAX,
    STATUSES,
    TAG_MAX,
    TAGS_MAX,
    TEXT_MAX,
    TITLE_MAX,
    USERNAME_MAX,
)


@dataclass(frozen=True)
class Documented:
    """A limit the document declares for a response value, which the rules enforced when
    the value was written. Responses are not checked against it again: a value stored
    under an older, looser rule must stay readable rather than become a server error."""

    limits: tuple[tuple[str, Any], ...]

    def __get_pydantic_json_schema__(self, core_schema: Any, handler: Any) -> JsonSchemaValue:
        schema = handler(core_schema)
        schema.update(dict(self.limits))
        return schema


def limited(**limits: Any) -> Documented:
    return Documented(tuple(limits.items()))


# Limits of stored values that ``lessons.rules`` does not name: column widths and sizes
# that follow from the rules (lessons.models).
PUBLIC_ID_MAX = 16
EXTERNAL_ID_MAX = 200
SLUG_MAX = 30  # status, kind, domain, function, purpose and similar names
CODE_MAX = 10
CLASSIFICATION_MAX = 40
MILESTONE_NAME_MAX = 60
# REL TO and nation lists after groups expand: at most every nation code there is.
NATION_LIST_MAX = 300
MARKING_MAX = CLASSIFICATION_MAX + len(" // REL TO ") + NATION_LIST_MAX * (CODE_MAX + 2)
FACET_VALUES_MAX = 1_000  # values of one facet: more than nations or years can reach
PROBLEM_TEXT_MAX = 20_000
# One error per key of the body at most, and a key takes at least four bytes.
PROBLEM_ERRORS_MAX = API_MAX_BODY // 4
INT32_MAX = 2**31 - 1
# What the API's reads return at most (their queries' limits; pages in rules.py).
EXERCISES_MAX = 500
RECOMMENDATIONS_MAX = 50
REASONS_MAX = 6  # one per kind of reason lessons.services.recommendations gives

Id = Annotated[str, limited(maxLength=PUBLIC_ID_MAX)]
Slug = Annotated[str, limited(maxLength=SLUG_MAX)]
CodeOut = Annotated[str, limited(maxLength=CODE_MAX)]
TextOut = Annotated[str, limited(maxLength=TEXT_MAX)]
ShortOut = Annotated[str, limited(maxLength=SHORT_MAX)]
NoteOut = Annotated[str, limited(maxLength=NOTE_MAX)]
MarkingOut = Annotated[str, limited(maxLength=MARKING_MAX)]
Version = Annotated[int, limited(format="int32", minimum=1, maximum=INT32_MAX)]
Count = Annotated[int, limited(format="int32", minimum=0, maximum=INT32_MAX)]
Codes = Annotated[list[CodeOut], limited(maxItems=NATION_LIST_MAX)]
Tags = Annotated[list[Annotated[str, limited(maxLength=TAG_MAX)]], limited(maxItems=TAGS_MAX)]

Code = Annotated[str, StringConstraints(min_length=2, max_length=10,
                                        pattern=r"^[A-Za-z][A-Za-z0-9]{1,9}$")]
Tag = Annotated[str, StringConstraints(min_length=1, max_length=TAG_MAX)]
Text = Annotated[str, StringConstraints(max_length=TEXT_MAX)]
Short = Annotated[str, StringConstraints(max_length=SHORT_MAX)]
Note = Annotated[str, StringConstraints(max_length=NOTE_MAX)]
PublicId = Annotated[str, StringConstraints(min_length=1, max_length=210)]
# Stored as naive UTC; sent as RFC 3339 with the zone, as the document's date-time says.
UtcDateTime = Annotated[datetime, AfterValidator(
    lambda value: value if value.tzinfo else value.replace(tzinfo=UTC))]
Moment = Annotated[UtcDateTime, limited(maxLength=len("2000-01-01T00:00:00.000000+00:00"))]
Day = Annotated[date, limited(maxLength=len("2000-01-01"))]


class _In(BaseModel):
    """Request bodies: unknown keys are refused, so a typo is an error, not a no-op."""

    model_config = ConfigDict(extra="forbid")


# --- lessons ---------------------------------------------------------------------------
class LessonFields(_In):
    title: Annotated[str, StringConstraints(max_length=TITLE_MAX)] | None = None
    observation: Text | None = None
    discussion: Text | None = None
    conclusion: Text | None = None
    recommendation: Text | None = None
    kind: Literal[KINDS] | None = None
    friction: Text | None = None
    workaround: Text | None = None
    limits: Text | None = None
    permanence: Literal[("", *PERMANENCE)] | None = None
    source_event: Short | None = None
    observed_on: Day | None = None
    location: Short | None = None
    unit: Short | None = None
    domains: Annotated[list[Literal[DOMAINS]], Field(max_length=len(DOMAINS))] | None = None
    functions: Annotated[list[Literal[FUNCTIONS]], Field(max_length=len(FUNCTIONS))] | None \
        = None
    tags: Annotated[list[Tag], Field(max_length=TAGS_MAX)] | None = None
    nations: Annotated[list[Code], Field(max_length=NATIONS_MAX)] | None = None
    classification: Annotated[str, StringConstraints(max_length=40)] | None = None
    releasable_to: Annotated[list[Code], Field(max_length=NATIONS_MAX)] | None = Field(
        default=None, description="Nation or group codes (groups such as FVEY expand when "
                                  "saved). Defaults to the originator nation alone.")


class LessonCreate(LessonFields):
    """A new lesson: a draft, or submitted for review at once with ``"submit": true``."""

    title: Annotated[str, StringConstraints(min_length=1, max_length=TITLE_MAX)]
    submit: bool = Field(default=False, description=(
        "A draft needs only a title; submitting also needs observation and recommendation "
        "(and, for a workaround, friction and workaround): 422 when one is missing."))


class LessonPatch(LessonFields):
    """Only the keys given change. Needs ``If-Match`` with the version it is based on."""


class TransitionIn(_In):
    """A move along the status table, with what the table asks for it: a ``comment``
    (return to author), a ``reason`` (reject, archive) or ``evidence`` (learned); or any
    of them as ``note`` (optional for a validation, kept in its audit record). Validate,
    reject and outcome decisions are never the lesson's author's (403)."""

    to: Literal[STATUSES]
    note: Note = ""
    comment: Note = ""
    reason: Note = ""
    evidence: Note = ""
    releasable_to: Annotated[list[Code], Field(max_length=NATIONS_MAX)] | None = Field(
        default=None, description="Validation only: the REL TO the lesson gets as it is "
                                  "validated, nation or group codes. It may only widen the "
                                  "current REL TO (422 otherwise; narrowing is an edit). "
                                  "Left out: unchanged.")

    def text(self) -> str:
        return next((value for value in (self.note, self.comment, self.reason, self.evidence)
                     if value.strip()), "")


class Action(BaseModel):
    description: NoteOut
    owner_org: ShortOut
    owner_nation: CodeOut | None
    due_on: Day | None
    status: Literal["open", "done"]


class LessonOut(BaseModel):
    id: Id
    external_id: Annotated[str, limited(maxLength=EXTERNAL_ID_MAX)]
    title: Annotated[str, limited(maxLength=TITLE_MAX)]
    observation: TextOut
    discussion: TextOut
    conclusion: TextOut
    recommendation: TextOut
    kind: Literal[KINDS]
    friction: TextOut
    workaround: TextOut
    limits: TextOut
    permanence: Slug
    source_event: ShortOut
    observed_on: Day | None
    location: ShortOut
    unit: ShortOut
    domains: Annotated[list[Slug], limited(maxItems=len(DOMAINS))]
    functions: Annotated[list[Slug], limited(maxItems=len(FUNCTIONS))]
    tags: Tags
    nations: Codes
    originator_nation: CodeOut
    classification: Annotated[str, limited(maxLength=CLASSIFICATION_MAX)]
    releasable_to: Codes
    status: Literal[STATUSES]
    actions: Annotated[list[Action], limited(maxItems=ACTIONS_MAX)]
    version: Version
    created_at: Moment
    updated_at: Moment
    marking: MarkingOut


class FacetValueOut(BaseModel):
    value: ShortOut
    label: ShortOut
    count: Count


QUERY_MESSAGE_MAX = 2_000


class ExpansionOut(BaseModel):
    term: Annotated[str, limited(maxLength=QUERY_MAX)]
    also_searched_as: Annotated[list[Annotated[str, limited(maxLength=QUERY_MAX)]],
                                limited(maxItems=QUERY_NOTES_MAX)]


class LessonPage(BaseModel):
    items: Annotated[list[LessonOut], limited(maxItems=PER_PAGE_MAX)]
    total: Count
    page: Annotated[int, limited(format="int32", minimum=1, maximum=PAGE_MAX)]
    per_page: Annotated[int, limited(format="int32", minimum=1, maximum=PER_PAGE_MAX)]
    facets: dict[Slug, Annotated[list[FacetValueOut], limited(maxItems=FACET_VALUES_MAX)]]
    partial_match: bool = Field(
        default=False, description="Plain words are ranked, not all required: true when "
        "no lesson the caller may see holds every word (``message`` says so).")
    message: Annotated[str, limited(maxLength=QUERY_MESSAGE_MAX)] = Field(
        default="", description="What to tell the searcher of the result, e.g. \"No lesson "
        "holds all 6 words; showing lessons that hold most of them.\"")
    expansions: Annotated[list[ExpansionOut], limited(maxItems=QUERY_NOTES_MAX)] = Field(
        default_factory=list, description="What the query's words were also searched as "
        "(glossary equivalents, other spellings).")
    problems: Annotated[list[Annotated[str, limited(maxLength=QUERY_MESSAGE_MAX)]],
                        limited(maxItems=QUERY_NOTES_MAX)] = Field(
        default_factory=list, description="What is wrong with the query (unknown field "
        "values, a field without a value, an unclosed parenthesis or quote), with the "
        "valid values where there are few.")
    suggestion: Annotated[str, limited(maxLength=QUERY_MAX + 50)] = Field(
        default="", description="A corrected query to offer (\"Did you mean\"), or empty.")


# --- exercises -----------------------------------------------------------------------------
class ObjectiveIn(_In):
    id: Annotated[str, StringConstraints(max_length=16)] = Field(
        default="", description="An existing objective's id, to reword it in place.")
    text: Annotated[str, StringConstraints(min_length=1, max_length=OBJECTIVE_MAX)]


ObjectiveText = Annotated[str, StringConstraints(min_length=1, max_length=OBJECTIVE_MAX)]


class ExerciseFields(_In):
    name: Annotated[str, StringConstraints(max_length=EXERCISE_NAME_MAX)] | None = None
    type: Literal[EXERCISE_TYPES] | None = None
    lead_nation: Code | None = None
    nations: Annotated[list[Code], Field(max_length=NATIONS_MAX)] | None = None
    starts_on: Day | None = None
    ends_on: Day | None = None
    location: Short | None = None
    description: Annotated[str, StringConstraints(max_length=DESCRIPTION_MAX)] | None = None
    objectives: Annotated[list[ObjectiveText | ObjectiveIn],
                          Field(max_length=OBJECTIVES_MAX)] | None = Field(
        default=None, description="In order. Strings; an unchanged text keeps its "
                                  "objective's id, and {\"id\", \"text\"} rewords one.")
    tags: Annotated[list[Tag], Field(max_length=TAGS_MAX)] | None = None
    milestones: Annotated[dict[Annotated[str, StringConstraints(max_length=60)], Day | None],
                          Field(max_length=MILESTONES_MAX)] | None = Field(
        default=None, description="Milestone name to date: the six standard names "
                                  "(concept_development, initial_planning_conference, "
                                  "main_planning_conference, final_planning_conference, "
                                  "execution, after_action_review) and custom ones.")
    planners: Annotated[list[Annotated[str, StringConstraints(max_length=64)]],
                        Field(max_length=PLANNERS_MAX)] | None = Field(
        default=None, description="Usernames of the planners who may edit it.")


class ExerciseCreate(ExerciseFields):
    name: Annotated[str, StringConstraints(min_length=1, max_length=EXERCISE_NAME_MAX)]
    starts_on: Day
    ends_on: Day


class ExercisePatch(ExerciseFields):
    """Only the keys given change. Needs ``If-Match`` with the version it is based on."""


class ObjectiveOut(BaseModel):
    id: Id
    text: Annotated[str, limited(maxLength=OBJECTIVE_MAX)]


class ExerciseOut(BaseModel):
    id: Id
    name: Annotated[str, limited(maxLength=EXERCISE_NAME_MAX)]
    type: Literal[EXERCISE_TYPES]
    lead_nation: CodeOut
    nations: Codes
    starts_on: Day
    ends_on: Day
    location: ShortOut
    description: Annotated[str, limited(maxLength=DESCRIPTION_MAX)]
    objectives: Annotated[list[ObjectiveOut], limited(maxItems=OBJECTIVES_MAX)]
    tags: Tags
    milestones: dict[Annotated[str, limited(maxLength=MILESTONE_NAME_MAX)], Day | None]
    planners: Annotated[list[Annotated[str, limited(maxLength=USERNAME_MAX)]],
                        limited(maxItems=PLANNERS_MAX)]
    status: Literal["planned", "under_way", "completed"]
    version: Version
    created_at: Moment
    updated_at: Moment
    marking: MarkingOut


class ExerciseList(BaseModel):
    items: Annotated[list[ExerciseOut], limited(maxItems=EXERCISES_MAX)]
    total: Count


class AttachIn(_In):
    lesson_id: PublicId
    purpose: Literal[PURPOSES]
    objective: Annotated[str, StringConstraints(max_length=OBJECTIVE_MAX)] | None = Field(
        default=None, description="An objective's id, its text, or its number.")
    milestone: Annotated[str, StringConstraints(max_length=60)] | None = Field(
        default=None, description="Default: the next planning conference.")
    note: Note = ""


class LinkPatch(_In):
    """Change how the exercise uses the lesson, and/or move it one step (``status``);
    ``evidence`` is required for the outcomes ``effective`` and ``not_effective``."""

    purpose: Literal[PURPOSES] | None = None
    objective: Annotated[str, StringConstraints(max_length=OBJECTIVE_MAX)] | None = None
    milestone: Annotated[str, StringConstraints(max_length=60)] | None = None
    note: Note | None = None
    status: Literal[LINK_STATUSES] | None = None
    evidence: Note | None = None


class LessonSummary(BaseModel):
    id: Id
    title: Annotated[str, limited(maxLength=TITLE_MAX)]
    status: Literal[STATUSES]
    marking: MarkingOut


class StepOut(BaseModel):
    from_status: Literal[LINK_STATUSES] | None
    to_status: Literal[LINK_STATUSES]
    by: Annotated[str, limited(maxLength=USERNAME_MAX)]
    at: Moment
    note: NoteOut


MilestoneOut = Annotated[str, limited(maxLength=MILESTONE_NAME_MAX)]


class LinkOut(BaseModel):
    lesson_id: Id
    lesson: LessonSummary
    purpose: Literal[PURPOSES]
    objective: ObjectiveOut | None
    milestone: MilestoneOut | None
    note: NoteOut
    status: Literal[LINK_STATUSES]
    evidence: NoteOut
    confirmation: Literal["", "pending", "confirmed", "declined"]
    # A link moves one step at a time through five statuses; edits add no step.
    steps: Annotated[list[StepOut], limited(maxItems=len(LINK_STATUSES))]
    version: Version


class RecommendationOut(BaseModel):
    lesson: LessonOut
    score: float
    reasons: Annotated[list[Annotated[str, limited(maxLength=PROBLEM_TEXT_MAX)]],
                       limited(maxItems=REASONS_MAX)]
    releasable_to_all: bool
    missing_release: Codes


class RecommendationList(BaseModel):
    items: Annotated[list[RecommendationOut], limited(maxItems=RECOMMENDATIONS_MAX)]


class PacketLesson(BaseModel):
    id: Id
    external_id: Annotated[str, limited(maxLength=EXTERNAL_ID_MAX)]
    title: Annotated[str, limited(maxLength=TITLE_MAX)]
    marking: MarkingOut
    kind: Slug
    status: Slug
    originator_nation: CodeOut
    observation: TextOut
    discussion: TextOut
    conclusion: TextOut
    recommendation: TextOut
    tags: Tags
    releasable_to: Codes
    purpose: Slug
    objective: ObjectiveOut | None
    milestone: MilestoneOut | None
    link_status: Slug
    note: NoteOut


class PacketExercise(BaseModel):
    id: Id
    name: Annotated[str, limited(maxLength=EXERCISE_NAME_MAX)]
    starts_on: Day
    ends_on: Day


class Withheld(BaseModel):
    count: Count = Field(description="Attached lessons the caller can see that are not "
                                     "releasable to every nation in the audience.")
    nations: dict[CodeOut, Count] = Field(
        description="Nation lacking release: how many of them.")


class PacketOut(BaseModel):
    exercise: PacketExercise
    milestone: MilestoneOut
    marking: MarkingOut
    audience: Codes
    lessons: list[PacketLesson]  # as many as the exercise has attached (no cap)
    withheld: Withheld


class FieldError(BaseModel):
    field: Annotated[str, limited(maxLength=PROBLEM_TEXT_MAX)]
    message: Annotated[str, limited(maxLength=PROBLEM_TEXT_MAX)]


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: Annotated[str, limited(maxLength=PROBLEM_TEXT_MAX)]
    title: Annotated[str, limited(maxLength=PROBLEM_TEXT_MAX)]
    status: Annotated[int, limited(format="int32", minimum=100, maximum=599)]
    detail: Annotated[str, limited(maxLength=PROBLEM_TEXT_MAX)]
    errors: Annotated[list[FieldError], limited(maxItems=PROBLEM_ERRORS_MAX)] | None = None


def dump(model: type[BaseModel], data: Any) -> dict:
    """Serialise through the response schema, so a response cannot drift from the
    document that describes it."""
    return model.model_validate(data).model_dump(mode="json")

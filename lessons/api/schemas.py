"""The API's request and response schemas: what the code validates bodies with, what it
serialises responses through, and what the OpenAPI document is generated from.

Shapes, types, allowed values and lengths come from ``lessons.rules`` (the one rule
set); rules that need the database (known nations, objectives of an exercise, the
status table) are the services' and come back as 409/422 problems like any other.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from lessons.rules import (
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
    PERMANENCE,
    PLANNERS_MAX,
    PURPOSES,
    SHORT_MAX,
    STATUSES,
    TAG_MAX,
    TAGS_MAX,
    TEXT_MAX,
    TITLE_MAX,
)

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
    observed_on: date | None = None
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
    observation: Annotated[str, StringConstraints(min_length=1, max_length=TEXT_MAX)]
    submit: bool = False


class LessonPatch(LessonFields):
    """Only the keys given change. Needs ``If-Match`` with the version it is based on."""


class TransitionIn(_In):
    """A move along the status table, with what the table asks for it: a ``comment``
    (return to author), a ``reason`` (reject, archive) or ``evidence`` (learned); or any
    of them as ``note``."""

    to: Literal[STATUSES]
    note: Note = ""
    comment: Note = ""
    reason: Note = ""
    evidence: Note = ""

    def text(self) -> str:
        return next((value for value in (self.note, self.comment, self.reason, self.evidence)
                     if value.strip()), "")


class Action(BaseModel):
    description: str
    owner_org: str
    owner_nation: str | None
    due_on: date | None
    status: Literal["open", "done"]


class LessonOut(BaseModel):
    id: str
    external_id: str
    title: str
    observation: str
    discussion: str
    conclusion: str
    recommendation: str
    kind: Literal[KINDS]
    friction: str
    workaround: str
    limits: str
    permanence: str
    source_event: str
    observed_on: date | None
    location: str
    unit: str
    domains: list[str]
    functions: list[str]
    tags: list[str]
    nations: list[str]
    originator_nation: str
    classification: str
    releasable_to: list[str]
    status: Literal[STATUSES]
    actions: list[Action]
    version: int
    created_at: UtcDateTime
    updated_at: UtcDateTime
    marking: str


class FacetValueOut(BaseModel):
    value: str
    label: str
    count: int


class LessonPage(BaseModel):
    items: list[LessonOut]
    total: int
    page: int
    per_page: int
    facets: dict[str, list[FacetValueOut]]


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
    starts_on: date | None = None
    ends_on: date | None = None
    location: Short | None = None
    description: Annotated[str, StringConstraints(max_length=DESCRIPTION_MAX)] | None = None
    objectives: Annotated[list[ObjectiveText | ObjectiveIn],
                          Field(max_length=OBJECTIVES_MAX)] | None = Field(
        default=None, description="In order. Strings; an unchanged text keeps its "
                                  "objective's id, and {\"id\", \"text\"} rewords one.")
    tags: Annotated[list[Tag], Field(max_length=TAGS_MAX)] | None = None
    milestones: Annotated[dict[Annotated[str, StringConstraints(max_length=60)], date | None],
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
    starts_on: date
    ends_on: date


class ExercisePatch(ExerciseFields):
    """Only the keys given change. Needs ``If-Match`` with the version it is based on."""


class ObjectiveOut(BaseModel):
    id: str
    text: str


class ExerciseOut(BaseModel):
    id: str
    name: str
    type: Literal[EXERCISE_TYPES]
    lead_nation: str
    nations: list[str]
    starts_on: date
    ends_on: date
    location: str
    description: str
    objectives: list[ObjectiveOut]
    tags: list[str]
    milestones: dict[str, date | None]
    planners: list[str]
    status: Literal["planned", "under_way", "completed"]
    version: int
    created_at: UtcDateTime
    updated_at: UtcDateTime
    marking: str


class ExerciseList(BaseModel):
    items: list[ExerciseOut]
    total: int


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
    id: str
    title: str
    status: Literal[STATUSES]
    marking: str


class StepOut(BaseModel):
    from_status: Literal[LINK_STATUSES] | None
    to_status: Literal[LINK_STATUSES]
    by: str
    at: UtcDateTime
    note: str


class LinkOut(BaseModel):
    lesson_id: str
    lesson: LessonSummary
    purpose: Literal[PURPOSES]
    objective: ObjectiveOut | None
    milestone: str | None
    note: str
    status: Literal[LINK_STATUSES]
    evidence: str
    confirmation: Literal["", "pending", "confirmed", "declined"]
    steps: list[StepOut]
    version: int


class RecommendationOut(BaseModel):
    lesson: LessonOut
    score: float
    reasons: list[str]
    releasable_to_all: bool
    missing_release: list[str]


class RecommendationList(BaseModel):
    items: list[RecommendationOut]


class PacketLesson(BaseModel):
    id: str
    external_id: str
    title: str
    marking: str
    kind: str
    status: str
    originator_nation: str
    observation: str
    discussion: str
    conclusion: str
    recommendation: str
    tags: list[str]
    releasable_to: list[str]
    purpose: str
    objective: ObjectiveOut | None
    milestone: str | None
    link_status: str
    note: str


class PacketExercise(BaseModel):
    id: str
    name: str
    starts_on: date
    ends_on: date


class Withheld(BaseModel):
    count: int = Field(description="Attached lessons the caller can see that are not "
                                   "releasable to every nation in the audience.")
    nations: dict[str, int] = Field(description="Nation lacking release: how many of them.")


class PacketOut(BaseModel):
    exercise: PacketExercise
    milestone: str
    marking: str
    audience: list[str]
    lessons: list[PacketLesson]
    withheld: Withheld


class FieldError(BaseModel):
    field: str
    message: str


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str
    title: str
    status: int
    detail: str
    errors: list[FieldError] | None = None


def dump(model: type[BaseModel], data: Any) -> dict:
    """Serialise through the response schema, so a response cannot drift from the
    document that describes it."""
    return model.model_validate(data).model_dump(mode="json")

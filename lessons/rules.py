"""The one rule set: allowed values and limits of the data contract.

HTML forms, the importer and the API all check lessons through ``check_lesson`` so a
value accepted by one door is accepted by all of them (docs/ARCHITECTURE.md, section 8).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any

KINDS = ("lesson", "workaround", "best_practice")
KIND_LABELS = {"lesson": "Lesson", "workaround": "Workaround", "best_practice": "Best practice"}
PERMANENCE = ("interim", "permanent")
DOMAINS = (
    "doctrine", "organization", "training", "materiel",
    "leadership_education", "personnel", "facilities", "policy",
)
DOMAIN_LABELS = {
    "doctrine": "Doctrine", "organization": "Organization", "training": "Training",
    "materiel": "Materiel", "leadership_education": "Leadership and education",
    "personnel": "Personnel", "facilities": "Facilities", "policy": "Policy",
}
FUNCTIONS = (
    "command_control", "movement_maneuver", "intelligence", "fires", "sustainment", "protection",
)
FUNCTION_LABELS = {
    "command_control": "Command and control", "movement_maneuver": "Movement and maneuver",
    "intelligence": "Intelligence", "fires": "Fires", "sustainment": "Sustainment",
    "protection": "Protection",
}
STATUSES = (
    "draft", "submitted", "validated", "action_assigned", "learned",
    "rejected", "withdrawn", "archived",
)
STATUS_LABELS = {
    "draft": "Draft", "submitted": "Submitted", "validated": "Validated",
    "action_assigned": "Action assigned", "learned": "Learned", "rejected": "Rejected",
    "withdrawn": "Withdrawn", "archived": "Archived",
}
ACTION_STATUSES = ("open", "done")
# Lessons another lesson may link to: all but those their authors withdrew (still theirs
# to read, but no longer a lesson anyone stands behind).
LINKABLE_STATUSES = tuple(status for status in STATUSES if status != "withdrawn")
ROLES = ("contributor", "analyst", "planner", "admin")
# External ids of lessons received from another Muster instance: "federation:<sender>:<id>".
FEDERATED_ID_PREFIX = "federation:"

TITLE_MAX = 300
TITLE_ADVISED = 75  # JULLS advice; longer titles are allowed up to TITLE_MAX
TEXT_MAX = 50_000
SHORT_MAX = 200  # source_event, location, unit, owner_org
TAG_MAX = 100
TAGS_MAX = 50
NATIONS_MAX = 60
ACTIONS_MAX = 50
LINKS_MAX = 50  # links shown on one lesson's page
LINKS_ON_CREATE_MAX = 10  # "similar lessons" ticked while writing a new one
NOTE_MAX = 10_000  # review comments, reasons, evidence
USERNAME_MAX = 64
# Listings, on pages and over the API: no listing is read further, and past it an
# offset overflows what the databases count to.
PAGE_MAX = 10_000
PER_PAGE_MAX = 100  # rows of one API page
# Characters of one search query (the page's field, the API's ``q``): longer ones are
# refused by the API and cut by the page.
QUERY_MAX = 500
# Pages of search results offered on the search page: no search reads further.
SEARCH_PAGE_MAX = 500
# What a search answer explains: expansions shown, problems named (bounded, as the
# query's length bounds them).
QUERY_NOTES_MAX = 50

LESSON_TEXT_FIELDS = (
    "observation", "discussion", "conclusion", "recommendation",
    "friction", "workaround", "limits",
)
WORKAROUND_FIELDS = ("friction", "workaround", "limits", "permanence")
# A draft needs only its title (an author saves early and often); the rest is asked for
# when the lesson is submitted (workflow.py: the submit transition's required_fields).
REQUIRED_ON_SAVE = ("title",)
REQUIRED_ON_SUBMIT = ("title", "observation", "recommendation")

NATION_CODE = re.compile(r"^[A-Z][A-Z0-9]{2,9}$")


def unstorable(value: Any, where: str = "") -> str | None:
    """Where in ``value`` (a JSON-like value) a string holds what no database stores: a
    NUL character (PostgreSQL refuses the whole statement) or an unpaired surrogate
    (which no UTF-8 encoder writes). The path is ``key.index...`` below ``where`` ("" for
    ``value`` itself); None when everything is storable."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return where
        return where if "\x00" in value else None
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        # A bad key is reported at its parent: the key itself is not printable.
        found = unstorable(key, where) if isinstance(key, str) else None
        if found is None:
            found = unstorable(item, f"{where}.{key}" if where else str(key))
        if found is not None:
            return found
    return None


def normalise_tags(raw: str | Iterable[str]) -> list[str]:
    """Lower-case, trim, squeeze spaces and deduplicate, keeping first-seen order."""
    items = raw.split(",") if isinstance(raw, str) else list(raw)
    seen: dict[str, None] = {}
    for item in items:
        tag = " ".join(str(item).split()).lower()
        if tag:
            seen.setdefault(tag, None)
    return list(seen)


def normalise_codes(raw: str | Iterable[str]) -> list[str]:
    """Upper-case and deduplicate nation or group codes given as a list or ``A, B``."""
    items = raw.split(",") if isinstance(raw, str) else list(raw)
    seen: dict[str, None] = {}
    for item in items:
        code = str(item).strip().upper()
        if code:
            seen.setdefault(code, None)
    return list(seen)


def _check_length(errors: dict[str, str], data: Mapping[str, Any], key: str, limit: int) -> None:
    value = data.get(key)
    if isinstance(value, str) and len(value) > limit:
        errors[key] = f"At most {limit:,} characters (this has {len(value):,})."


def check_lesson(data: Mapping[str, Any], *, submitting: bool,
                 known_nations: set[str], classifications: Iterable[str]) -> dict[str, str]:
    """Return ``{contract key: message}`` for every rule ``data`` breaks (empty if none).

    ``data`` holds already-normalised values (tags and codes as lists, dates as ``date``).
    ``known_nations`` holds nation *and* group codes; groups are expanded later.
    """
    errors: dict[str, str] = {}
    required = REQUIRED_ON_SUBMIT if submitting else REQUIRED_ON_SAVE
    for key in required:
        if not str(data.get(key) or "").strip():
            errors[key] = ("Required before the lesson can be submitted."
                           if submitting and key not in REQUIRED_ON_SAVE else "Required.")
    for key in ("title",):
        if key not in errors:
            _check_length(errors, data, key, TITLE_MAX)
    for key in LESSON_TEXT_FIELDS:
        if key not in errors:
            _check_length(errors, data, key, TEXT_MAX)
    for key in ("source_event", "location", "unit"):
        _check_length(errors, data, key, SHORT_MAX)

    kind = data.get("kind") or "lesson"
    if kind not in KINDS:
        errors["kind"] = f"Must be one of: {', '.join(KINDS)}."
    permanence = data.get("permanence") or ""
    if permanence and permanence not in PERMANENCE:
        errors["permanence"] = f"Must be one of: {', '.join(PERMANENCE)}."
    if kind != "workaround":
        for key in WORKAROUND_FIELDS:
            if data.get(key):
                errors.setdefault(key, "Only a workaround has this field; set kind to workaround.")
    elif submitting:
        for key in ("friction", "workaround"):
            if not str(data.get(key) or "").strip():
                errors.setdefault(key, "Required for a workaround before it can be submitted.")

    for key, allowed in (("domains", DOMAINS), ("functions", FUNCTIONS)):
        bad = [v for v in data.get(key) or [] if v not in allowed]
        if bad:
            errors[key] = f"Unknown: {', '.join(bad)}. Allowed: {', '.join(allowed)}."

    tags = data.get("tags") or []
    if len(tags) > TAGS_MAX:
        errors["tags"] = f"At most {TAGS_MAX} tags."
    elif any(len(t) > TAG_MAX for t in tags):
        errors["tags"] = f"Each tag at most {TAG_MAX} characters."

    for key in ("nations", "releasable_to"):
        codes = data.get(key) or []
        unknown = [c for c in codes if c not in known_nations]
        if unknown:
            errors[key] = f"Unknown nation or group: {', '.join(unknown)}."
        elif len(codes) > NATIONS_MAX:
            errors[key] = f"At most {NATIONS_MAX} nations."
    originator = data.get("originator_nation")
    if originator is not None and originator not in known_nations:
        errors["originator_nation"] = f"Unknown nation: {originator}."

    classification = data.get("classification")
    allowed_classifications = list(classifications)
    if classification and classification not in allowed_classifications:
        errors["classification"] = f"Must be one of: {', '.join(allowed_classifications)}."

    observed_on = data.get("observed_on")
    if observed_on is not None and not isinstance(observed_on, date):
        errors["observed_on"] = "Must be a date (YYYY-MM-DD)."
    return errors


def check_action(data: Mapping[str, Any], *, known_nations: set[str]) -> dict[str, str]:
    """Rules for one remedial action; same shape as ``check_lesson``."""
    errors: dict[str, str] = {}
    if not str(data.get("description") or "").strip():
        errors["description"] = "Required."
    else:
        _check_length(errors, data, "description", NOTE_MAX)
    _check_length(errors, data, "owner_org", SHORT_MAX)
    owner_nation = data.get("owner_nation")
    if owner_nation and owner_nation not in known_nations:
        errors["owner_nation"] = f"Unknown nation: {owner_nation}."
    if (data.get("status") or "open") not in ACTION_STATUSES:
        errors["status"] = f"Must be one of: {', '.join(ACTION_STATUSES)}."
    due_on = data.get("due_on")
    if due_on is not None and not isinstance(due_on, date):
        errors["due_on"] = "Must be a date (YYYY-MM-DD)."
    return errors


def check_note(text: str | None, *, label: str, required: bool) -> str | None:
    """Check a review comment, reason or evidence; return a message or ``None``."""
    text = (text or "").strip()
    if required and not text:
        # "Evidence is required.", not "A evidence ...": labels are not all countable.
        return f"{label[:1].upper()}{label[1:]} is required."
    if len(text) > NOTE_MAX:
        return f"At most {NOTE_MAX:,} characters."
    return None


# --- exercises -----------------------------------------------------------------------------
EXERCISE_TYPES = ("cpx", "ftx", "cax", "staff_exercise", "other")
EXERCISE_TYPE_LABELS = {
    "cpx": "Command post exercise (CPX)", "ftx": "Field training exercise (FTX)",
    "cax": "Computer-assisted exercise (CAX)", "staff_exercise": "Staff exercise",
    "other": "Other",
}
STANDARD_MILESTONES = (
    "concept_development", "initial_planning_conference", "main_planning_conference",
    "final_planning_conference", "execution", "after_action_review",
)
MILESTONE_LABELS = {
    "concept_development": "Concept development",
    "initial_planning_conference": "Initial planning conference",
    "main_planning_conference": "Main planning conference",
    "final_planning_conference": "Final planning conference",
    "execution": "Execution", "after_action_review": "After action review",
}
MILESTONE_NAME = re.compile(r"^[a-z0-9][a-z0-9_]{0,59}$")
PURPOSES = ("training_objective", "inject", "read_ahead")
PURPOSE_LABELS = {"training_objective": "Training objective", "inject": "Inject",
                  "read_ahead": "Read-ahead"}
# The exercise-lesson link's status machine: one step at a time.
LINK_STATUSES = ("proposed", "accepted", "incorporated", "effective", "not_effective")
LINK_STATUS_LABELS = {"proposed": "Proposed", "accepted": "Accepted",
                      "incorporated": "Incorporated", "effective": "Effective",
                      "not_effective": "Not effective"}
LINK_STEPS = {"proposed": ("accepted",), "accepted": ("incorporated",),
              "incorporated": ("effective", "not_effective")}
OUTCOMES = ("effective", "not_effective")
# Lesson statuses an effective outcome can make learned (the status table's sources).
LEARNABLE = frozenset({"validated", "action_assigned"})
# Lessons an exercise may take up: identified ones, and learned ones worth re-checking.
ATTACHABLE_STATUSES = ("submitted", "validated", "action_assigned", "learned")

EXERCISE_NAME_MAX = 200
OBJECTIVE_MAX = 2_000
OBJECTIVES_MAX = 30
MILESTONES_MAX = 30
PLANNERS_MAX = 30
DESCRIPTION_MAX = 20_000
EXERCISE_DAYS_MAX = 366
ATTACH_BY_TAG_MAX = 200  # one "attach every lesson tagged X" at most


def milestone_label(name: str) -> str:
    """The standard label, or a custom name made readable ("site_survey" → "Site survey")."""
    return MILESTONE_LABELS.get(name) or name.replace("_", " ").capitalize()


def normalise_milestone_name(raw: str) -> str:
    """Custom milestone names are slugs like the standard ones: "Site survey" → "site_survey"."""
    return re.sub(r"[^a-z0-9]+", "_", str(raw).strip().lower()).strip("_")


def check_exercise(data: Mapping[str, Any], *, known_nations: set[str]) -> dict[str, str]:
    """Rules for an exercise's values (already normalised: codes upper-case lists, dates
    as ``date``, objectives a list of texts, milestones ``{name: date | None}``)."""
    errors: dict[str, str] = {}
    name = str(data.get("name") or "").strip()
    if not name:
        errors["name"] = "Required."
    else:
        _check_length(errors, data, "name", EXERCISE_NAME_MAX)
    if data.get("type") not in EXERCISE_TYPES:
        errors["type"] = f"Must be one of: {', '.join(EXERCISE_TYPES)}."
    lead = data.get("lead_nation")
    if not lead:
        errors["lead_nation"] = "Required."
    elif lead not in known_nations:
        errors["lead_nation"] = f"Unknown nation: {lead}."
    nations = data.get("nations") or []
    unknown = [c for c in nations if c not in known_nations]
    if unknown:
        errors["nations"] = f"Unknown nation or group: {', '.join(unknown)}."
    elif len(nations) > NATIONS_MAX:
        errors["nations"] = f"At most {NATIONS_MAX} nations."
    starts, ends = data.get("starts_on"), data.get("ends_on")
    for key, value in (("starts_on", starts), ("ends_on", ends)):
        if value is None:
            errors[key] = "Required (YYYY-MM-DD)."
        elif not isinstance(value, date):
            errors[key] = "Must be a date (YYYY-MM-DD)."
    if isinstance(starts, date) and isinstance(ends, date):
        if ends < starts:
            errors["ends_on"] = "Must be on or after the start date."
        elif (ends - starts).days > EXERCISE_DAYS_MAX:
            errors["ends_on"] = f"An exercise lasts at most {EXERCISE_DAYS_MAX} days."
    _check_length(errors, data, "location", SHORT_MAX)
    _check_length(errors, data, "description", DESCRIPTION_MAX)
    objectives = data.get("objectives") or []
    if len(objectives) > OBJECTIVES_MAX:
        errors["objectives"] = f"At most {OBJECTIVES_MAX} objectives."
    elif any(len(o) > OBJECTIVE_MAX for o in objectives):
        errors["objectives"] = f"Each objective at most {OBJECTIVE_MAX:,} characters."
    tags = data.get("tags") or []
    if len(tags) > TAGS_MAX:
        errors["tags"] = f"At most {TAGS_MAX} tags."
    elif any(len(t) > TAG_MAX for t in tags):
        errors["tags"] = f"Each tag at most {TAG_MAX} characters."
    milestones = data.get("milestones") or {}
    if len(milestones) > MILESTONES_MAX:
        errors["milestones"] = f"At most {MILESTONES_MAX} milestones."
    else:
        for key, value in milestones.items():
            if not MILESTONE_NAME.match(key):
                errors["milestones"] = (f"Milestone name {key!r}: letters, digits and "
                                        "underscores, at most 60.")
                break
            if value is not None and not isinstance(value, date):
                errors["milestones"] = f"Milestone {key}: the date must be YYYY-MM-DD."
                break
    return errors


def check_attachment(data: Mapping[str, Any]) -> dict[str, str]:
    """Rules for a lesson's link to an exercise (purpose and note; the objective and
    milestone are checked against the exercise by the service)."""
    errors: dict[str, str] = {}
    if data.get("purpose") not in PURPOSES:
        errors["purpose"] = f"Must be one of: {', '.join(PURPOSES)}."
    note = data.get("note") or ""
    if len(note) > NOTE_MAX:
        errors["note"] = f"At most {NOTE_MAX:,} characters."
    return errors

# Watched searches (saved searches whose new lessons are notified, once a day at most).
WATCH_NAME_MAX = 100
WATCHES_MAX = 20  # per user
WATCH_QUERY_MAX = 2_000  # the stored search, as a normalised query string
WATCH_CHECK_HOURS = 24
WATCH_TITLES_MAX = 50  # titles one e-mail lists; the rest are counted

# Files attached to lessons (slides, photos, PDFs, documents): ``services/files.py``.
FILE_NAME_MAX = 200  # characters of the sanitised original name kept and shown
FILES_PER_LESSON_MAX = 20
FILE_TEXT_MAX = 200_000  # characters of a document's text indexed for search
FILE_MAX_MB_DEFAULT = 20  # MUSTER_FILE_MAX_MB

"""Lesson capture, review and action forms; field names are the contract keys."""

from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import (
    BooleanField,
    DateField,
    HiddenField,
    SelectChoice,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import InputRequired, Length, Optional

from lessons.forms.fields import CodeListField, MultiCheckboxField, PublicIdListField
from lessons.forms.versioned import VersionedForm
from lessons.rules import (
    ACTION_STATUSES,
    DOMAIN_LABELS,
    FUNCTION_LABELS,
    KIND_LABELS,
    NOTE_MAX,
    SHORT_MAX,
    TEXT_MAX,
    TITLE_MAX,
)


def _choices(labels: dict[str, str]) -> list[SelectChoice]:
    return [SelectChoice(value, label) for value, label in labels.items()]


def _text(label: str, description: str = "") -> TextAreaField:
    return TextAreaField(label, description=description, render_kw={"maxlength": TEXT_MAX})


def _short(label: str, description: str = "") -> StringField:
    return StringField(label, description=description, render_kw={"maxlength": SHORT_MAX})


class LessonForm(FlaskForm):
    title = StringField(
        "Title", render_kw={"maxlength": TITLE_MAX},
        description="One line that a staff officer would search for; 75 characters or "
                    "fewer is best.")
    observation = _text("Observation", "What happened: facts, not opinions.")
    discussion = _text("Discussion", "Why it happened and what it affected.")
    conclusion = _text("Conclusion", "What the observation means.")
    recommendation = _text("Recommendation", "What should change, and who should change it.")
    kind = SelectField("Kind", choices=_choices(KIND_LABELS), default="lesson")
    friction = _text("Friction", "The partnering problem the workaround gets around.")
    workaround = _text("Workaround", "What the unit actually did.")
    limits = _text("Limits", "Where the workaround stops working.")
    permanence = SelectField("Permanence", choices=_choices(
        {"": "—", "interim": "Interim", "permanent": "Permanent"}), default="")
    source_event = _short("Operation or exercise")
    observed_on = DateField("Observed on", validators=[Optional()], format="%Y-%m-%d")
    location = _short("Location")
    unit = _short("Unit")
    domains = MultiCheckboxField("DOTMLPF-P domains",
                                 choices=_choices(DOMAIN_LABELS))
    functions = MultiCheckboxField("Warfighting functions",
                                   choices=_choices(FUNCTION_LABELS))
    tags = StringField("Tags", description="Comma separated, e.g. liaison, mission-network",
                       render_kw={"maxlength": 2000})
    nations = CodeListField("Partner nations involved")
    classification = SelectField("Classification")
    releasable_to = CodeListField("Releasable to")

    def contract_data(self) -> dict[str, Any]:
        """The submitted values keyed by contract key, for the lesson services."""
        return {name: field.data for name, field in self._fields.items()
                if name not in ("csrf_token",)}


class NewLessonForm(LessonForm):
    """The new-lesson form: the lesson plus the similar lessons the author ticks to link
    the new one to (public ids, checked by the service)."""

    link_to = PublicIdListField("Link to this lesson")
    # Carried through "check for similar lessons" and refused saves; the service checks
    # that the user may see what they name.
    exercise_id = HiddenField()
    derived_from = HiddenField()

    def contract_data(self) -> dict[str, Any]:
        data = super().contract_data()
        for key in ("link_to", "exercise_id", "derived_from"):
            data.pop(key, None)
        return data


class EditLessonForm(VersionedForm, LessonForm):
    """The lesson form with the version it was loaded at (``VersionedForm``)."""

    def contract_data(self) -> dict[str, Any]:
        data = super().contract_data()
        data.pop("version", None)
        return data


def _lesson_reference(value: str | None) -> str:
    """A pasted lesson address (``.../lessons/<id>``) becomes its id; ids pass as typed."""
    value = (value or "").strip()
    return value.rstrip("/").rsplit("/", 1)[-1] if "/" in value else value


class LinkForm(FlaskForm):
    other = StringField("Lesson ID or address", filters=[_lesson_reference],
                        validators=[InputRequired(), Length(max=300)],
                        description="The ID shown on its page (e.g. MUS-…) or its address.")


class TransitionForm(FlaskForm):
    to = HiddenField()
    note = TextAreaField("Comment", render_kw={"maxlength": NOTE_MAX})
    # The validate form only: the REL TO the lesson gets as it is validated (it may only
    # widen; the service checks). ``widen`` says the choices were on the form, so that
    # every box unticked reads as a choice, and a form without them changes nothing.
    releasable_to = CodeListField("Releasable to")
    widen = HiddenField()

    def chosen_release(self) -> list[str] | None:
        return (self.releasable_to.data or []) if self.widen.data == "1" else None


class ActionForm(FlaskForm):
    description = TextAreaField("Action", render_kw={"maxlength": NOTE_MAX})
    owner_org = _short("Owning organisation")
    owner_nation = StringField("Owning nation", render_kw={"maxlength": 3})
    due_on = DateField("Due", validators=[Optional()], format="%Y-%m-%d")
    status = SelectField("Status", choices=_choices({s: s.title() for s in ACTION_STATUSES}),
                         default="open")


class ActionStatusForm(FlaskForm):
    status = SelectField("Status", choices=_choices({s: s.title() for s in ACTION_STATUSES}))


class ImportForm(FlaskForm):
    file = FileField("File", validators=[FileRequired("Choose a file to upload.")],
                     description="JSON Lines (.jsonl) or CSV (.csv) in the exchange format, "
                                 "UTF-8.")
    format = SelectField("Format", choices=[SelectChoice("", "From the file name"),
                                            SelectChoice("jsonl", "JSON Lines"),
                                            SelectChoice("csv", "CSV")], default="")
    map = FileField("Field map (optional)",
                    description="A JSON map from another system's fields to Muster's, "
                                "as for `flask lessons import --map`.")
    as_migration = BooleanField(
        "Migration from another system (administrators only)",
        description="Statuses, originators and external ids are taken as they are, for any "
                    "lesson, and audited as a migration.")


class ConfirmImportForm(FlaskForm):
    skip_invalid = BooleanField("Import the good lines and leave out the rejected ones")
    as_migration = BooleanField()  # carried from the upload; checked again on confirming

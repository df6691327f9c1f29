"""Exercise planning forms; field names are the contract keys (``milestones-execution``,
``objectives-0-text``), so a browser, a script and the API speak the same names."""

from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from wtforms import (
    DateField,
    Field,
    FieldList,
    Form,
    FormField,
    HiddenField,
    SelectChoice,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import Length, Optional

from lessons.forms.fields import CodeListField, PublicIdListField
from lessons.forms.versioned import VersionedForm
from lessons.rules import (
    DESCRIPTION_MAX,
    EXERCISE_NAME_MAX,
    EXERCISE_TYPE_LABELS,
    MILESTONE_LABELS,
    NOTE_MAX,
    OBJECTIVE_MAX,
    OBJECTIVES_MAX,
    PLANNERS_MAX,
    PURPOSE_LABELS,
    SHORT_MAX,
    STANDARD_MILESTONES,
)

BLANK_OBJECTIVES = 3
BLANK_MILESTONES = 2


def _date(label: str) -> DateField:
    return DateField(label, validators=[Optional()], format="%Y-%m-%d")


class UsernameListField(Field):
    """Usernames from any number of inputs sharing one name: ticked boxes of the picker,
    or a comma-separated list as scripts and older pages post it. Trimmed, lower-cased,
    repeats dropped; whether each may plan is the service's one check, not the form's."""

    def process_formdata(self, valuelist: list[str]) -> None:
        names = (name.strip().lower() for value in valuelist for name in value.split(","))
        self.data = list(dict.fromkeys(name for name in names if name))

    def _value(self) -> str:
        return ", ".join(self.data or [])


class ObjectiveRow(Form):
    id = HiddenField()
    text = TextAreaField("Objective", validators=[Length(max=OBJECTIVE_MAX)],
                         render_kw={"maxlength": OBJECTIVE_MAX, "rows": 2})


class CustomMilestoneRow(Form):
    name = StringField("Name", validators=[Length(max=60)], render_kw={"maxlength": 60})
    due_on = _date("Date")


class StandardMilestones(Form):
    """One date per standard milestone, named by its slug."""


for _slug in STANDARD_MILESTONES:
    setattr(StandardMilestones, _slug, _date(MILESTONE_LABELS[_slug]))


class ExerciseForm(VersionedForm, FlaskForm):
    name = StringField("Name", validators=[Length(max=EXERCISE_NAME_MAX)],
                       render_kw={"maxlength": EXERCISE_NAME_MAX},
                       description="As partners will know it, e.g. Exercise TALISMAN SABRE 2027.")
    type = SelectField("Type", choices=[SelectChoice(k, v) for k, v in
                                        EXERCISE_TYPE_LABELS.items()], default="cpx")
    lead_nation = StringField("Lead nation", validators=[Length(max=3)],
                              render_kw={"maxlength": 3}, description="A three-letter code.")
    nations = CodeListField("Participating nations")
    starts_on = _date("Starts on")
    ends_on = _date("Ends on")
    location = StringField("Location", validators=[Length(max=SHORT_MAX)],
                           render_kw={"maxlength": SHORT_MAX})
    description = TextAreaField("Description", validators=[Length(max=DESCRIPTION_MAX)],
                                render_kw={"maxlength": DESCRIPTION_MAX},
                                description="The scenario and what the training audience "
                                            "must practise; recommendations read it.")
    objectives = FieldList(FormField(ObjectiveRow), min_entries=BLANK_OBJECTIVES,
                           max_entries=40)
    tags = StringField("Tags", description="Comma separated, e.g. liaison, mission-network",
                       render_kw={"maxlength": 2000})
    milestones = FormField(StandardMilestones)
    custom_milestones = FieldList(FormField(CustomMilestoneRow),
                                  min_entries=BLANK_MILESTONES, max_entries=40)
    planners = UsernameListField(
        "Planners", description=f"Who may edit this exercise (at most {PLANNERS_MAX}): "
                                "active planners of the participating nations.")

    #: Submit buttons that only re-render the form (no JavaScript needed): one more
    #: objective box, or the planner picker for the nations chosen so far.
    RERENDER = ("add_objective", "refresh_planners")

    def rerender_only(self, formdata: Any) -> str | None:
        """Which re-render button was pressed, if one was (nothing is saved then)."""
        return next((name for name in self.RERENDER if name in formdata), None)

    def add_objective_box(self) -> None:
        """One more empty objective box, up to the rule's limit."""
        if len(self.objectives) < OBJECTIVES_MAX:
            self.objectives.append_entry()

    def candidate_nations(self) -> list[str]:
        """The nations the form names so far (participants and lead), for the picker."""
        return [*(self.nations.data or []), *([self.lead_nation.data.strip().upper()]
                                              if self.lead_nation.data else [])]

    def contract_data(self) -> dict[str, Any]:
        """The submitted values keyed by contract key, for the exercise services."""
        milestones: dict[str, Any] = {slug: getattr(self.milestones.form, slug).data
                                      for slug in STANDARD_MILESTONES}
        for row in self.custom_milestones:
            name = (row.form.name.data or "").strip()
            if name:
                milestones[name] = row.form.due_on.data
        return {
            "name": self.name.data or "", "type": self.type.data,
            "lead_nation": self.lead_nation.data or "", "nations": self.nations.data or [],
            "starts_on": self.starts_on.data, "ends_on": self.ends_on.data,
            "location": self.location.data or "", "description": self.description.data or "",
            "objectives": [{"id": row.form.id.data or "", "text": row.form.text.data or ""}
                           for row in self.objectives],
            "tags": self.tags.data or "", "milestones": milestones,
            "planners": list(self.planners.data or []),
        }


class AttachForm(FlaskForm):
    """Attach one lesson, or change how an attached one is used."""

    purpose = SelectField("Purpose", choices=[SelectChoice(k, v) for k, v in
                                              PURPOSE_LABELS.items()])
    objective = SelectField("Supports objective", validate_choice=False)
    milestone = SelectField("Packet for milestone", validate_choice=False)
    note = TextAreaField("Note", validators=[Length(max=NOTE_MAX)],
                         render_kw={"maxlength": NOTE_MAX, "rows": 3})


class ByTagForm(AttachForm):
    """Attach every previewed lesson carrying a tag."""

    tag = HiddenField()
    lesson_ids = PublicIdListField("Lessons")


class StepForm(FlaskForm):
    to = HiddenField()
    note = TextAreaField("Evidence or note", validators=[Length(max=NOTE_MAX)],
                         render_kw={"maxlength": NOTE_MAX, "rows": 3})


class DecisionForm(FlaskForm):
    """An analyst's confirm/decline (outcome) or approve/decline (release request)."""

    decision = HiddenField()
    note = TextAreaField("Comment", validators=[Length(max=NOTE_MAX)],
                         render_kw={"maxlength": NOTE_MAX, "rows": 2})


class ReleaseRequestForm(FlaskForm):
    lesson_id = HiddenField()
    nations = CodeListField("Nations to add")
    reason = TextAreaField("Why", validators=[Length(max=NOTE_MAX)],
                           render_kw={"maxlength": NOTE_MAX, "rows": 2})
    milestone = HiddenField()
    audience = HiddenField()


class EmptyForm(FlaskForm):
    """A button that changes something: CSRF only."""

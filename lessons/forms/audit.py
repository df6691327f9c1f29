"""The audit page's filters: a GET form (it changes nothing, so it carries no CSRF token),
every field bounded; what the filters mean is the audit service's to say."""

from __future__ import annotations

from datetime import date

from wtforms import DateField, Form, SelectField, StringField
from wtforms.validators import Length, Optional, ValidationError

from lessons.services.audit import SUBJECT_MAX, TrailFilter

EARLIEST = date(2000, 1, 1)
LATEST = date(9999, 12, 31)
DATE_HINT = "a date as YYYY-MM-DD, e.g. 2026-03-31"


def _in_range(form: Form, field: DateField) -> None:
    if field.data and not EARLIEST <= field.data <= LATEST:
        raise ValidationError(f"Give a date from {EARLIEST.isoformat()} on.")


class TrailForm(Form):
    user = StringField("User", [Optional(), Length(max=SUBJECT_MAX)],
                       description="A username: what they did, or what was done to "
                                   "their account.",
                       render_kw={"maxlength": SUBJECT_MAX, "spellcheck": "false"})
    action = SelectField("Action", [Optional()], choices=[])
    nation = SelectField("Actor's nation", [Optional()], choices=[])
    date_from = DateField("From", [Optional(), _in_range], name="from",
                          format="%Y-%m-%d", description="UTC day, inclusive",
                          render_kw={"placeholder": "YYYY-MM-DD"})
    date_to = DateField("To", [Optional(), _in_range], name="to", format="%Y-%m-%d",
                        description="UTC day, inclusive",
                        render_kw={"placeholder": "YYYY-MM-DD"})

    def __init__(self, formdata, actions: list[str], nations: list[str]) -> None:
        super().__init__(formdata)
        self.action.choices = [("", "Any action")] + [(a, a.replace("_", " "))
                                                      for a in actions]
        self.nation.choices = [("", "Any nation")] + [(code, code) for code in nations]

    def validate(self, extra_validators=None) -> bool:
        valid = super().validate(extra_validators)
        for dated in (self.date_from, self.date_to):
            # WTForms' own words do not say which format it wants.
            if dated.errors and dated.process_errors:
                dated.errors = [f"Not a date: give {DATE_HINT}."]
        if self.action.errors:
            self.action.errors = ["No such action on the record; choose one from the list."]
        if self.nation.errors:
            self.nation.errors = ["Not a nation code; choose one from the list."]
        if valid and self.date_from.data and self.date_to.data \
                and self.date_from.data > self.date_to.data:
            self.date_to.errors = ["Must be on or after the From date."]
            return False
        return valid

    def trail_filter(self) -> TrailFilter:
        return TrailFilter(user=(self.user.data or "").strip().lower(),
                           action=self.action.data or "", nation=self.nation.data or "",
                           since=self.date_from.data, until=self.date_to.data)

    def messages(self) -> str:
        """Every error as one sentence, for the CSV route's plain 4xx answer."""
        return " ".join(f"{field.label.text}: {' '.join(field.errors)}"
                        for field in self if field.errors)

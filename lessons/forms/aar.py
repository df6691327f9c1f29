"""Forms for drafting lessons from an after-action report: the upload, and the review of
the proposals (one fieldset each, in one form, so "Create drafts" sends them all)."""

from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import (
    BooleanField,
    DateField,
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

from lessons.rules import KIND_LABELS, SHORT_MAX, TEXT_MAX, TITLE_MAX
from lessons.services.aar import PROPOSALS_MAX


class AarUploadForm(FlaskForm):
    file = FileField("After-action report", validators=[FileRequired("Choose a report to "
                                                                     "upload.")],
                     description="A Word document (.docx), a PDF with text in it, or plain "
                                 "text (.txt).",
                     render_kw={"accept": ".docx,.pdf,.txt"})


def _text(label: str) -> TextAreaField:
    return TextAreaField(label, validators=[Length(max=TEXT_MAX)],
                         render_kw={"maxlength": TEXT_MAX, "rows": 3})


class ProposalForm(Form):
    """One proposed draft (a sub-form: the outer form carries the CSRF token)."""

    keep = BooleanField("Keep", default=True)
    merge = BooleanField("Merge with the previous proposal")
    found_as = HiddenField(validators=[Length(max=200)])
    title = StringField("Title", validators=[Length(max=TITLE_MAX)],
                        render_kw={"maxlength": TITLE_MAX})
    kind = SelectField("Kind", choices=[SelectChoice(value, label)
                                        for value, label in KIND_LABELS.items()],
                       default="lesson")
    observation = _text("Observation")
    discussion = _text("Discussion")
    conclusion = _text("Conclusion")
    recommendation = _text("Recommendation")


class AarReviewForm(FlaskForm):
    source_event = StringField("Operation or exercise", validators=[Length(max=SHORT_MAX)],
                               render_kw={"maxlength": SHORT_MAX})
    observed_on = DateField("Observed on", validators=[Optional()], format="%Y-%m-%d")
    unit = StringField("Unit", validators=[Length(max=SHORT_MAX)],
                       render_kw={"maxlength": SHORT_MAX})
    proposals = FieldList(FormField(ProposalForm), max_entries=PROPOSALS_MAX)

    def context(self) -> dict[str, Any]:
        return {"source_event": self.source_event.data or "",
                "observed_on": self.observed_on.data, "unit": self.unit.data or ""}

    def items(self) -> list[tuple[dict[str, Any], bool, bool]]:
        """(proposal values, keep, merge with the previous), in page order."""
        out = []
        for entry in self.proposals:
            data = dict(entry.form.data)
            keep, merge = bool(data.pop("keep")), bool(data.pop("merge"))
            out.append((data, keep, merge))
        return out

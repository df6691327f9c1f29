"""Notification forms: mark read (one or all) and the per-event settings."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import HiddenField, RadioField, SelectChoice, StringField
from wtforms.validators import InputRequired, Length, Optional

from lessons.models.base import PUBLIC_ID_LENGTH
from lessons.services.notifications import DELIVERIES, EMAIL_MAX, EVENTS


class MarkReadForm(FlaskForm):
    notification = HiddenField(validators=[InputRequired(), Length(max=PUBLIC_ID_LENGTH)])


class ReadAllForm(FlaskForm):
    """A "mark all as read" button: CSRF only."""


class SettingsForm(FlaskForm):
    email = StringField(
        "E-mail address", validators=[Optional(), Length(max=EMAIL_MAX)],
        render_kw={"maxlength": EMAIL_MAX, "autocomplete": "email", "type": "email"},
        description="Where e-mails go. Leave empty to be told in Muster only.")


for _event, _spec in EVENTS.items():
    setattr(SettingsForm, _event, RadioField(
        _spec.label, choices=[SelectChoice(k, v) for k, v in DELIVERIES.items()],
        validators=[InputRequired()]))


def event_fields(form: SettingsForm) -> list:
    """The per-event fields, in EVENTS' order (the page lists them so)."""
    return [form[event] for event in EVENTS]

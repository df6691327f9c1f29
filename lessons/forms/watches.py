"""Watched-search forms: watch the current search (a name), rename one, delete one."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import StringField
from wtforms.validators import InputRequired, Length

from lessons.rules import WATCH_NAME_MAX


class WatchForm(FlaskForm):
    name = StringField(
        "Name", validators=[InputRequired("Give the watch a name."),
                            Length(max=WATCH_NAME_MAX)],
        render_kw={"maxlength": WATCH_NAME_MAX},
        description="You are told once a day of new lessons matching this search.")


class DeleteWatchForm(FlaskForm):
    """A "stop watching" button: CSRF only."""

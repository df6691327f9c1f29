"""Account page forms: API tokens."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import StringField
from wtforms.validators import InputRequired, Length

from lessons.services.tokens import TOKEN_NAME_MAX


class TokenForm(FlaskForm):
    name = StringField("Token name", validators=[InputRequired(), Length(max=TOKEN_NAME_MAX)],
                       render_kw={"maxlength": TOKEN_NAME_MAX},
                       description="What will use it, e.g. \u201cCALL export script\u201d.")


class RevokeForm(FlaskForm):
    """A revoke button: CSRF only."""

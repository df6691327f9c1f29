"""Account page forms: password change and API tokens."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import EqualTo, InputRequired, Length

from lessons.services.tokens import TOKEN_NAME_MAX
from lessons.services.users import PASSWORD_MAX, PASSWORD_MIN


class PasswordForm(FlaskForm):
    current_password = PasswordField(
        "Current password", validators=[InputRequired(), Length(max=PASSWORD_MAX)],
        render_kw={"autocomplete": "current-password"})
    new_password = PasswordField(
        "New password", validators=[InputRequired(), Length(max=PASSWORD_MAX)],
        render_kw={"autocomplete": "new-password", "minlength": PASSWORD_MIN},
        description=f"At least {PASSWORD_MIN} characters; not your username, not a common "
                    "password. A few unrelated words make a good one.")
    new_password_again = PasswordField(
        "New password again", validators=[
            InputRequired(), EqualTo("new_password", "The two new passwords differ.")],
        render_kw={"autocomplete": "new-password"})


class TokenForm(FlaskForm):
    name = StringField("Token name", validators=[InputRequired(), Length(max=TOKEN_NAME_MAX)],
                       render_kw={"maxlength": TOKEN_NAME_MAX},
                       description="What will use it, e.g. \u201cCALL export script\u201d.")


class RevokeForm(FlaskForm):
    """A revoke button: CSRF only."""

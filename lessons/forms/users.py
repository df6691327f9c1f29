"""The admins' user forms: the list's filters (GET, no CSRF token: it changes nothing), a
new account, an account's edit and a password reset. Format and limits only; whether a
username is free, a nation known or a change allowed is the users service's to say."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, Form, PasswordField, SelectChoice, SelectField, StringField
from wtforms.validators import EqualTo, InputRequired, Length, Optional

from lessons.forms.fields import MultiCheckboxField
from lessons.forms.versioned import VersionedForm
from lessons.rules import ROLES, SHORT_MAX, USERNAME_MAX
from lessons.services.notifications import EMAIL_MAX, EMAIL_RULE
from lessons.services.users import DISPLAY_NAME_MAX, PASSWORD_MAX, PASSWORD_MIN, SEARCH_MAX

PASSWORD_RULES = (f"At least {PASSWORD_MIN} and at most {PASSWORD_MAX} characters; not "
                  "containing the username; not one of the 10,000 most common passwords. "
                  "A few unrelated words make a good one. Give it to the user by a safe "
                  "way; they can change it on their account page.")
ROLE_LABELS = {"contributor": "Contributor (writes lessons)",
               "analyst": "Analyst (reviews their nation's lessons)",
               "planner": "Planner (plans exercises)",
               "admin": "Administrator (users, glossary, audit trail)"}
UNKNOWN_NATION = "Unknown nation; choose an ISO 3166-1 alpha-3 code from the list."
UNKNOWN_ROLE = f"Unknown role; choose from {', '.join(ROLES)}."


def _too_long(limit: int) -> Length:
    return Length(max=limit, message=f"At most {limit} characters.")


def _nation_choices(codes: list[tuple[str, str]]) -> list[SelectChoice]:
    return [SelectChoice(code, f"{code} \u2013 {name}") for code, name in codes]


class _Account:
    """The fields a new account and an edit share."""

    display_name = StringField(
        "Display name", validators=[_too_long(DISPLAY_NAME_MAX)],
        description="Rank and name as colleagues know them, e.g. Maj Dana Ruiz.",
        render_kw={"maxlength": DISPLAY_NAME_MAX})
    nation = SelectField("Nation", validators=[InputRequired()], choices=[],
                         description="Decides which lessons the user sees (their REL TO).")
    unit = StringField("Unit", validators=[_too_long(SHORT_MAX)],
                       render_kw={"maxlength": SHORT_MAX})
    roles = MultiCheckboxField("Roles", choices=[SelectChoice(r, ROLE_LABELS[r])
                                                 for r in ROLES])

    def _choices(self, nations: list[tuple[str, str]]) -> None:
        self.nation.choices = _nation_choices(nations)

    def _plain_errors(self) -> None:
        """WTForms' words for a choice not offered do not say what to do."""
        if self.nation.errors:
            self.nation.errors = [UNKNOWN_NATION if self.nation.data else "Choose a nation."]
        if self.roles.errors:
            self.roles.errors = [UNKNOWN_ROLE]


class NewUserForm(_Account, FlaskForm):
    username = StringField(
        "Username", validators=[InputRequired(), _too_long(USERNAME_MAX)],
        description="2\u201364 characters: lower-case letters, digits, '.', '_' or '-', "
                    "e.g. gb.analyst. It cannot be changed later.",
        render_kw={"maxlength": USERNAME_MAX, "spellcheck": "false", "autocomplete": "off"})
    password = PasswordField(
        "Initial password", validators=[InputRequired(), _too_long(PASSWORD_MAX)],
        description=PASSWORD_RULES,
        render_kw={"autocomplete": "new-password", "minlength": PASSWORD_MIN})
    password_again = PasswordField(
        "Initial password again",
        validators=[InputRequired(), EqualTo("password", "The two passwords differ.")],
        render_kw={"autocomplete": "new-password"})

    def __init__(self, nations: list[tuple[str, str]], **kwargs) -> None:
        super().__init__(**kwargs)
        self._choices(nations)
        # The first nation would be chosen silently otherwise.
        self.nation.choices = [SelectChoice("", "Choose a nation"), *self.nation.choices]

    def validate(self, extra_validators=None) -> bool:
        valid = super().validate(extra_validators)
        self._plain_errors()
        return valid


class EditUserForm(VersionedForm, _Account, FlaskForm):
    email = StringField(
        "E-mail address", validators=[Length(max=EMAIL_MAX, message=EMAIL_RULE)],
        description="Where the user's notifications are e-mailed. Leave empty for "
                    "notifications in Muster only; the user can also set it on their "
                    "notification settings page.",
        render_kw={"maxlength": EMAIL_MAX, "type": "email", "spellcheck": "false",
                   "autocomplete": "off"})
    active = BooleanField("Active", description="An inactive user cannot log in, and "
                                                "their sessions and API tokens stop working.")

    def __init__(self, nations: list[tuple[str, str]], **kwargs) -> None:
        super().__init__(**kwargs)
        self._choices(nations)

    def validate(self, extra_validators=None) -> bool:
        valid = super().validate(extra_validators)
        if not (self.display_name.data or "").strip():
            self.display_name.errors = [*self.display_name.errors, "Give a display name."]
            valid = False
        self._plain_errors()
        return valid


class ResetPasswordForm(FlaskForm):
    password = PasswordField(
        "New password", validators=[InputRequired(), _too_long(PASSWORD_MAX)],
        description=PASSWORD_RULES,
        render_kw={"autocomplete": "new-password", "minlength": PASSWORD_MIN})
    password_again = PasswordField(
        "New password again",
        validators=[InputRequired(), EqualTo("password", "The two passwords differ.")],
        render_kw={"autocomplete": "new-password"})


class UserFilterForm(Form):
    q = StringField("Name", [Optional(), _too_long(SEARCH_MAX)],
                    description="Part of a username or display name.",
                    render_kw={"maxlength": SEARCH_MAX, "spellcheck": "false",
                               "type": "search"})
    nation = SelectField("Nation", [Optional()], choices=[])
    role = SelectField("Role", [Optional()],
                       choices=[SelectChoice("", "Any role"),
                                *(SelectChoice(r, r) for r in ROLES)])
    active = SelectField("Active", [Optional()],
                         choices=[SelectChoice("", "Active or not"),
                                  SelectChoice("yes", "Active"), SelectChoice("no", "Inactive")])

    def __init__(self, formdata, nations: list[str]) -> None:
        super().__init__(formdata)
        self.nation.choices = [SelectChoice("", "Any nation"),
                               *(SelectChoice(code, code) for code in nations)]

    def validate(self, extra_validators=None) -> bool:
        valid = super().validate(extra_validators)
        if self.nation.errors:
            self.nation.errors = ["Not a nation code; choose one from the list."]
        if self.role.errors:
            self.role.errors = [UNKNOWN_ROLE]
        if self.active.errors:
            self.active.errors = ["Choose Active, Inactive or both."]
        return valid

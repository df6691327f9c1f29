"""Template globals and small view helpers shared across blueprints."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Flask
from flask_wtf import FlaskForm

from lessons import rules
from lessons.forms.auth import LogoutForm

# Offered as checkboxes on lesson forms; any other code can be typed beside them.
COMMON_PARTNERS = ("AUS", "CAN", "GBR", "NZL", "USA")


def apply_errors(form: FlaskForm, errors: dict[str, str]) -> None:
    """Show service (rule) errors next to the fields they concern."""
    for key, message in errors.items():
        field = form._fields.get(key)
        if field is not None:
            field.errors = [*field.errors, message]
        else:
            form.form_errors.append(message)


def is_safe_next(target: str | None) -> bool:
    """Only same-site relative paths may be used as a post-login redirect."""
    if not target:
        return False
    parts = urlsplit(target)
    return not parts.scheme and not parts.netloc and target.startswith("/") \
        and not target.startswith("//") and "\\" not in target


def register_template_helpers(app: Flask) -> None:
    # Globals (not a context processor) so imported macros see them too.
    app.jinja_env.globals.update(
        STATUS_LABELS=rules.STATUS_LABELS,
        KIND_LABELS=rules.KIND_LABELS,
        DOMAIN_LABELS=rules.DOMAIN_LABELS,
        FUNCTION_LABELS=rules.FUNCTION_LABELS,
        COMMON_PARTNERS=COMMON_PARTNERS,
        PURPOSE_LABELS=rules.PURPOSE_LABELS,
        LINK_STATUS_LABELS=rules.LINK_STATUS_LABELS,
        EXERCISE_TYPE_LABELS=rules.EXERCISE_TYPE_LABELS,
        QUERY_MAX=rules.QUERY_MAX,
    )

    @app.template_filter("labels")
    def labels(values, mapping: dict[str, str]) -> str:
        """Readable labels for slugs, e.g. domains; an unknown slug shows as itself."""
        return ", ".join(mapping.get(v, v) for v in values)

    @app.context_processor
    def per_request():
        return {"logout_form": LogoutForm(formdata=None)}

"""After-action reports in: upload a report, review the draft lessons proposed from it,
create the kept ones. Thin: parse, call ``services/aar_drafts``, render."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from lessons.errors import ValidationFailed
from lessons.forms.aar import AarReviewForm, AarUploadForm
from lessons.services import aar_drafts as service
from lessons.services.aar import PROPOSALS_MAX
from lessons.views.helpers import apply_errors

bp = Blueprint("aar", __name__, url_prefix="/lessons/aar")


@bp.url_value_preprocessor
def _upload_size_limit(endpoint: str | None, values: dict | None) -> None:  # noqa: ARG001
    """A report may be larger than other forms' MAX_CONTENT_LENGTH (MUSTER_AAR_MAX_MB).
    Set here, before any ``before_request`` hook (the CSRF check, the NUL check) reads
    the form and so fixes the limit."""
    if endpoint == "aar.upload":
        request.max_content_length = service.request_limit()


def _require_contributor() -> None:
    if not service.may_open(current_user):
        abort(403, "Only contributors can draft lessons from a report.")


@bp.route("", methods=["GET", "POST"])
def upload():
    """The upload: read the report, keep its proposals, go to their review."""
    _require_contributor()
    form = AarUploadForm()
    if form.validate_on_submit():
        report = form.file.data
        try:
            staged = service.stage(current_user, report.filename or "",
                                   report.read(service.max_bytes() + 1))
        except ValidationFailed as exc:
            apply_errors(form, exc.errors)
        else:
            return redirect(url_for("aar.review", token=staged.token), 303)
    status = 422 if form.is_submitted() else 200
    return render_template("lessons/aar_upload.html", form=form,
                           proposals_max=PROPOSALS_MAX,
                           max_mb=service.max_bytes() / (1024 * 1024)), status


@bp.route("/<token>", methods=["GET", "POST"])
def review(token: str):
    """The proposals of the user's own report (404 for anyone else's): GET shows them
    (or, once created, the drafts made); POST creates the kept ones."""
    _require_contributor()
    staged = service.get_staged(current_user, token)
    if request.method == "GET":
        if staged.created is not None:
            return render_template("lessons/aar_review.html", staged=staged, form=None,
                                   created=service.created_lessons(current_user, staged))
        form = AarReviewForm(data={
            "source_event": staged.context.source_event or "",
            "observed_on": staged.context.observed_on,
            "unit": staged.context.unit or current_user.unit or "",
            "proposals": [{**p.as_dict(), "keep": True, "merge": False}
                          for p in staged.proposals]})
        return render_template("lessons/aar_review.html", staged=staged, form=form)
    form = AarReviewForm()
    if form.validate_on_submit():
        try:
            made = service.create_drafts(current_user, token, form.context(), form.items())
        except ValidationFailed as exc:
            _apply_errors(form, exc.errors)
        else:
            flash(f"Created {len(made)} draft{'' if len(made) == 1 else 's'} from "
                  f"{staged.filename}.", "success")
            return redirect(url_for("aar.review", token=token), 303)
    return render_template("lessons/aar_review.html", staged=staged, form=form), 422


def _apply_errors(form: AarReviewForm, errors: dict[str, str]) -> None:
    """Service errors beside their fields: ``proposals-<n>-<field>`` names a proposal by
    its place on the page."""
    plain: dict[str, str] = {}
    for key, message in errors.items():
        parts = key.split("-", 2)
        if len(parts) == 3 and parts[0] == "proposals" and parts[1].isdigit() \
                and int(parts[1]) < len(form.proposals.entries):
            entry = form.proposals.entries[int(parts[1])].form
            field = entry._fields.get(parts[2])
            if field is not None:
                field.errors = [*field.errors, message]
                continue
        plain[key] = message
    # The list's errors were gathered when it was validated: gather them again.
    form.proposals.errors = [entry.errors for entry in form.proposals.entries]
    apply_errors(form, plain)

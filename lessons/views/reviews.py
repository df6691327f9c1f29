"""Analysts' decisions that other nations ask for: confirming an exercise outcome on one
of their nation's lessons, and widening a lesson's REL TO for an exercise's partners,
asked here or from a partner instance's exercise. All are listed in the analyst's review
list (the lessons page, "To review")."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask_login import current_user

from lessons.errors import ValidationFailed
from lessons.forms.exercises import DecisionForm
from lessons.services import attachments, packets, partner_requests

bp = Blueprint("reviews", __name__, url_prefix="/reviews")

REVIEW_LIST = "lessons.index"
DECISIONS = ("confirm", "approve", "decline")


def _decision() -> tuple[DecisionForm, str]:
    form = DecisionForm()
    if not form.validate_on_submit() or form.decision.data not in DECISIONS:
        abort(400, "The form was incomplete or expired; reload the page and try again.")
    return form, form.decision.data


def _refused(exc: ValidationFailed):
    return render_template("errors/error.html", status=422, title="Not recorded",
                           message=" ".join(exc.errors.values()),
                           back=url_for(REVIEW_LIST, tab="review")), 422


@bp.post("/outcomes/<exercise_id>/<lesson_id>")
def outcome(exercise_id: str, lesson_id: str):
    form, decision = _decision()
    try:
        attachments.decide_outcome(current_user, exercise_id, lesson_id,
                                   confirm=decision == "confirm", note=form.note.data or "")
    except ValidationFailed as exc:
        return _refused(exc)
    flash("Outcome confirmed: the lesson is now learned." if decision == "confirm"
          else "Outcome declined: the lesson stays open.", "success")
    return redirect(url_for(REVIEW_LIST, tab="review"))


@bp.post("/releases/<request_id>")
def release(request_id: str):
    form, decision = _decision()
    try:
        request = packets.decide_release(current_user, request_id,
                                         approve=decision == "approve",
                                         note=form.note.data or "")
    except ValidationFailed as exc:
        return _refused(exc)
    flash(f"Release {request.status}: {', '.join(request.nations)}.", "success")
    return redirect(url_for(REVIEW_LIST, tab="review"))


@bp.post("/partner/<public_id>")
def partner(public_id: str):
    """An outcome or release request from a partner instance: decided as a local one,
    and the decision travels back to the partner."""
    form, decision = _decision()
    try:
        request = partner_requests.decide(current_user, public_id, decision,
                                          form.note.data or "")
    except ValidationFailed as exc:
        return _refused(exc)
    flash(f"{'Outcome' if request.kind == 'outcome' else 'Release'} {request.status}; "
          f"the decision goes to {request.peer.name} with the next bundle.", "success")
    return redirect(url_for(REVIEW_LIST, tab="review"))

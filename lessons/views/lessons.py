"""Lesson pages: list, capture, edit, review actions. Thin: parse, call a service, render."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from wtforms import SelectChoice

from lessons import policy
from lessons.errors import PreconditionFailed, ValidationFailed
from lessons.forms.exercises import DecisionForm
from lessons.forms.files import FileUploadForm, RemoveFileForm
from lessons.forms.lessons import (
    ActionForm,
    ActionStatusForm,
    ConfirmImportForm,
    EditLessonForm,
    ImportForm,
    LessonForm,
    LinkForm,
    NewLessonForm,
    TransitionForm,
)
from lessons.models import Lesson
from lessons.rules import ATTACHABLE_STATUSES, KINDS, STATUSES
from lessons.search import related
from lessons.services import exercises as exercise_service
from lessons.services import files as file_service
from lessons.services import imports, worklist
from lessons.services import lessons as service
from lessons.views.helpers import apply_errors
from lessons.views.paging import page_arg

bp = Blueprint("lessons", __name__, url_prefix="/lessons")


RELATED_SHOWN = 5
SIMILAR_SHOWN = 8


def _lesson_form(form_class: type[LessonForm] = LessonForm, **kwargs) -> LessonForm:
    form = form_class(**kwargs)
    form.classification.choices = [SelectChoice(c) for c in current_app.config["CLASSIFICATIONS"]]
    return form


@bp.get("")
def index():
    flt = service.LessonFilter.from_args(request.args)
    pagination = service.list_lessons(current_user, flt, page=page_arg())
    waiting = worklist.to_review(current_user)
    counts = {tab: waiting.total if tab == "review" else
              service.count_lessons(current_user, service.LessonFilter(tab=tab))
              for tab in service.TABS}
    return render_template("lessons/index.html", pagination=pagination, flt=flt,
                           counts=counts, statuses=STATUSES, kinds=KINDS,
                           sort_choices=service.LESSON_SORTS.choices(),
                           confirmations=waiting.confirmations if flt.tab == "review" else [],
                           releases=waiting.releases if flt.tab == "review" else [],
                           partner=waiting.partner if flt.tab == "review" else [],
                           decision_form=DecisionForm())


@bp.route("/import", methods=["GET", "POST"])
def import_file():
    """Upload lessons (JSON Lines or CSV): preview first, store on confirmation."""
    if not imports.may_open(current_user):
        abort(403, "Only analysts import lessons.")
    form = ImportForm()
    migrating = policy.can_admin(current_user)
    if form.validate_on_submit():
        upload, mapping = form.file.data, form.map.data
        try:
            preview = imports.stage(current_user, upload.filename or "", upload.read(),
                                    form.format.data or "",
                                    mapping.read() if mapping else b"",
                                    migration=bool(form.as_migration.data))
        except ValidationFailed as exc:
            apply_errors(form, exc.errors)
        else:
            return render_template("lessons/import.html", form=form, preview=preview,
                                   confirm_form=ConfirmImportForm(formdata=None),
                                   migrating=migrating)
    status = 422 if form.is_submitted() else 200
    return render_template("lessons/import.html", form=form, preview=None,
                           migrating=migrating), status


@bp.post("/import/<token>")
def confirm_import(token: str):
    form = ConfirmImportForm()
    if not form.validate_on_submit():
        abort(400, "The form expired; upload the file again.")
    migration = bool(form.as_migration.data)
    report = imports.confirm(current_user, token, skip_invalid=bool(form.skip_invalid.data),
                             migration=migration)
    if not report.stored:
        preview = imports.preview(current_user, token, migration=migration)
        return render_template("lessons/import.html", form=ImportForm(formdata=None),
                               preview=preview, confirm_form=form, refused=True,
                               migrating=policy.can_admin(current_user)), 422
    flash(f"Imported {report.created} new and {report.updated} updated lesson(s); "
          f"{report.unchanged} unchanged, {len(report.rejected_lines)} line(s) left out.",
          "success")
    return redirect(url_for("lessons.index", tab="all"))


@bp.route("/new", methods=["GET", "POST"])
def new():
    if not policy.can_create_lesson(current_user):
        abort(403, "Only contributors can write lessons.")
    form = _lesson_form(NewLessonForm)
    if request.method == "GET":
        form.unit.data = current_user.unit
        _prefill_follow_up(form)
    action = request.form.get("action")
    if form.is_submitted() and action == "preview":
        # "Check for similar lessons": stores nothing, shows the closest visible lessons.
        data = form.contract_data()
        similar = related.similar_lessons(current_user, data.get("title") or "",
                                          related.lesson_text(data), limit=SIMILAR_SHOWN)
        return _new_page(form, similar, previewed=True), 200
    if form.validate_on_submit():
        submit = action == "submit"
        try:
            lesson = service.create_lesson(current_user, form.contract_data(), submit=submit,
                                           link_to=form.link_to.data or [],
                                           exercise_id=form.exercise_id.data or None,
                                           derived_from=form.derived_from.data or None)
        except ValidationFailed as exc:
            apply_errors(form, exc.errors)
        else:
            flash("Lesson submitted for review." if submit else "Draft saved.", "success")
            return redirect(url_for("lessons.detail", public_id=lesson.public_id))
    status = 422 if form.is_submitted() else 200
    return _new_page(form, [], previewed=False), status


def _prefill_follow_up(form: NewLessonForm) -> None:
    """``?exercise=`` (an observation written from an exercise) and ``?from=`` (a follow-up
    of a lesson whose fix did not work) start the form filled in. The source lesson's REL
    TO is the most the new one may have (the service enforces it)."""
    exercise_id, source_id = request.args.get("exercise", ""), request.args.get("from", "")
    if exercise_id:
        exercise = exercise_service.get_exercise(current_user, exercise_id)
        form.exercise_id.data = exercise.public_id
        form.source_event.data = exercise.name[:200]
        form.nations.data = list(exercise.nations)
        form.tags.data = ", ".join(exercise.tags)
    if source_id:
        source = service.get_lesson(current_user, source_id)
        form.derived_from.data = source.public_id
        form.title.data = f"Follow-up: {source.title}"[:300]
        form.kind.data = source.kind
        form.domains.data = list(source.domains)
        form.functions.data = list(source.functions)
        form.tags.data = ", ".join(source.tags)
        form.nations.data = list(source.nations)
        form.releasable_to.data = list(source.releasable_to)
        form.discussion.data = (f"Follows up {source.external_id} \u201c{source.title}\u201d, "
                                "whose fix did not work in the exercise.")


def _new_page(form: NewLessonForm, similar: list[Lesson], *, previewed: bool) -> str:
    """The new-lesson form; lessons already ticked stay listed (and ticked) whatever the
    latest check found, so re-checking or a refused save never loses a choice."""
    chosen = service.linkable_lessons(current_user, form.link_to.data or [])
    listed = chosen + [lesson for lesson in similar if lesson not in chosen]
    source = service.linkable_lessons(current_user, [form.derived_from.data or ""])
    exercise = (exercise_service.get_exercise(current_user, form.exercise_id.data)
                if form.exercise_id.data else None)
    return render_template("lessons/form.html", form=form, lesson=None, similar=listed,
                           previewed=previewed, found=len(similar),
                           source=source[0] if source else None, exercise=exercise)


def _detail_page(lesson: Lesson, *, status: int = 200, transition_errors=None,
                 action_form: ActionForm | None = None, link_form: LinkForm | None = None,
                 transition_form: TransitionForm | None = None,
                 file_form: FileUploadForm | None = None):
    linked = service.linked_lessons(current_user, lesson)
    if transition_form is None:
        transition_form = TransitionForm(formdata=None)
        transition_form.releasable_to.data = list(lesson.releasable_to)
    return render_template(
        "lessons/detail.html",
        lesson=lesson,
        history=service.history(current_user, lesson),
        transitions=policy.allowed_transitions(current_user, lesson),
        transition_errors=transition_errors or {},
        own_review=(lesson.status == "submitted"
                    and policy.reviews_own_lesson(current_user, lesson)),
        can_edit=policy.can_edit(current_user, lesson),
        can_manage_actions=policy.can_manage_actions(current_user, lesson),
        action_form=action_form or ActionForm(),
        transition_form=transition_form,
        action_status_form=ActionStatusForm(),
        linked=linked,
        related=related.related_lessons(current_user, lesson, limit=RELATED_SHOWN),
        link_form=link_form or LinkForm(formdata=None),
        files=file_service.list_files(current_user, lesson),
        file_form=file_form or FileUploadForm(formdata=None),
        remove_file_form=RemoveFileForm(formdata=None),
        file_max_mb=f"{file_service.max_bytes() / (1024 * 1024):g}",
        exercise_links=exercise_service.exercises_for_lesson(current_user, lesson),
        plannable=exercise_service.editable_exercises(current_user)
        if lesson.status in ATTACHABLE_STATUSES else [],
        source_exercise=_source_exercise(lesson),
    ), status


def _source_exercise(lesson: Lesson):
    """The exercise the lesson came from, if the viewer's nation takes part in it."""
    exercise = lesson.source_exercise
    return exercise if exercise and policy.can_view_exercise(current_user, exercise) else None


@bp.get("/<public_id>")
def detail(public_id: str):
    return _detail_page(service.get_lesson(current_user, public_id))


@bp.route("/<public_id>/edit", methods=["GET", "POST"])
def edit(public_id: str):
    lesson = service.get_lesson(current_user, public_id)
    policy.require_edit(current_user, lesson)
    values = service.lesson_values(lesson)
    values["tags"] = ", ".join(values["tags"])
    form = _lesson_form(EditLessonForm, data={**values, "version": str(lesson.version)})
    expected = form.posted_version() if form.is_submitted() else None
    if form.validate_on_submit():
        try:
            service.update_lesson(current_user, public_id, form.contract_data(),
                                  expected_version=expected)
        except ValidationFailed as exc:
            apply_errors(form, exc.errors)
        except PreconditionFailed:
            return _conflict_page(public_id, form)
        else:
            flash("Changes saved.", "success")
            return redirect(url_for("lessons.detail", public_id=public_id))
    status = 422 if form.is_submitted() else 200
    return render_template("lessons/form.html", form=form, lesson=lesson), status


def _conflict_page(public_id: str, form: EditLessonForm):
    """Someone saved the lesson after this form was loaded: show what they saved beside
    the form, which keeps everything this user typed, now based on the newer version so
    that saving again is a deliberate choice. Nothing was stored."""
    lesson = service.get_lesson(current_user, public_id)
    saved = service.lesson_values(lesson)
    mine = service.normalise_values(form.contract_data())
    differing = [(key, form[key].label.text, saved[key]) for key in mine
                 if key in saved and _comparable(saved[key]) != _comparable(mine[key])]
    form.version.data = str(lesson.version)
    return render_template("lessons/form.html", form=form, lesson=lesson,
                           conflict=differing), 409


def _comparable(value):
    if isinstance(value, list):
        return sorted(str(v) for v in value)
    return value if value not in (None, "") else ""


@bp.post("/<public_id>/transition")
def transition(public_id: str):
    form = TransitionForm()
    lesson = service.get_lesson(current_user, public_id)
    if not form.validate_on_submit():
        abort(400, "The form was incomplete or expired; reload the page and try again.")
    place = service.QueuePlace.of(lesson)
    to = form.to.data or ""
    try:
        lesson = service.transition_lesson(current_user, public_id, to, form.note.data or "",
                                           releasable_to=form.chosen_release())
    except ValidationFailed as exc:
        lesson = service.get_lesson(current_user, public_id)
        if form.chosen_release() is None:  # another move's form: REL TO as it stands
            form.releasable_to.data = list(lesson.releasable_to)
        return _detail_page(lesson, status=422,
                            transition_errors={to: _transition_messages(exc.errors)},
                            transition_form=form)
    if to in REVIEW_DECISIONS:
        return _next_to_review(lesson, place)
    flash(f"Lesson is now {lesson.status.replace('_', ' ')}.", "success")
    if not policy.can_view(current_user, lesson):
        # A lesson returned to its author is a draft again, the author's alone: its page
        # would answer the analyst 404, so go back to the review queue instead.
        return redirect(url_for("lessons.index", tab="review"))
    return redirect(url_for("lessons.detail", public_id=public_id))


# The decisions on a submitted lesson; after each, the analyst goes on to the next one.
REVIEW_DECISIONS = {"validated": "Validated", "draft": "Returned to its author",
                    "rejected": "Rejected"}


def _next_to_review(lesson: Lesson, place: service.QueuePlace):
    """After a decision, the next lesson of the analyst's To review list (in the list's
    order, from where the decided one stood), or the list itself when none is left."""
    done = f"{REVIEW_DECISIONS[lesson.status]}: \u201c{lesson.title}\u201d."
    following = service.next_to_review(current_user, place)
    if following is None:
        flash(f"{done} Nothing else is waiting for your review.", "success")
        return redirect(url_for("lessons.index", tab="review"))
    flash(f"{done} Next to review: \u201c{following.title}\u201d.", "success")
    return redirect(url_for("lessons.detail", public_id=following.public_id))


def _transition_messages(errors: dict[str, str]) -> list[str]:
    """Messages for a refused move. A failed submit check names the lesson field at fault
    (the page shows no form fields to put it next to); a missing note or open action
    speaks for itself."""
    return [message if key in ("note", "actions", "releasable_to")
            else f"{key.replace('_', ' ').capitalize()}: {message}"
            for key, message in errors.items()]


@bp.post("/<public_id>/actions")
def add_action(public_id: str):
    lesson = service.get_lesson(current_user, public_id)
    policy.require_manage_actions(current_user, lesson)
    form = ActionForm()
    if form.validate_on_submit():
        try:
            service.add_action(current_user, public_id, form.data)
        except ValidationFailed as exc:
            apply_errors(form, exc.errors)
        else:
            flash("Remedial action added.", "success")
            return redirect(url_for("lessons.detail", public_id=public_id) + "#actions")
    return _detail_page(lesson, status=422, action_form=form)


@bp.post("/<public_id>/actions/<int:position>")
def action_status(public_id: str, position: int):
    service.get_lesson(current_user, public_id)
    form = ActionStatusForm()
    if not form.validate_on_submit():
        abort(400, "Choose open or done.")
    service.set_action_status(current_user, public_id, position, form.status.data)
    flash(f"Action {position} marked {form.status.data}.", "success")
    return redirect(url_for("lessons.detail", public_id=public_id) + "#actions")


@bp.post("/<public_id>/links")
def add_link(public_id: str):
    """Link this lesson to another (by its ID or address); both pages then show it."""
    lesson = service.get_lesson(current_user, public_id)
    policy.require_edit(current_user, lesson)
    form = LinkForm()
    if form.validate_on_submit():
        try:
            service.link_lessons(current_user, public_id, form.other.data or "")
        except ValidationFailed as exc:
            apply_errors(form, exc.errors)
        else:
            flash("Lessons linked.", "success")
            return redirect(url_for("lessons.detail", public_id=public_id) + "#links")
    return _detail_page(lesson, status=422, link_form=form)


@bp.post("/<public_id>/links/<other_id>/delete")
def remove_link(public_id: str, other_id: str):
    """Remove the link between this lesson and another (CSRF-checked like every POST)."""
    service.unlink_lessons(current_user, public_id, other_id)
    flash("Link removed.", "success")
    return redirect(url_for("lessons.detail", public_id=public_id) + "#links")

"""Exercise pages: list, plan, recommendations, attached lessons, packets. Thin: parse,
call a service, render; every decision about who may see what is the services'."""

from __future__ import annotations

import json
from datetime import date

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user
from wtforms import SelectChoice

from lessons import policy
from lessons.errors import PreconditionFailed, ValidationFailed
from lessons.forms.exercises import (
    BLANK_MILESTONES,
    BLANK_OBJECTIVES,
    AttachForm,
    ByTagForm,
    DecisionForm,
    EmptyForm,
    ExerciseForm,
    ReleaseRequestForm,
    StepForm,
)
from lessons.models import Exercise, ExerciseLesson
from lessons.models.base import utcnow
from lessons.rules import (
    DOMAINS,
    KINDS,
    LINK_STEPS,
    OBJECTIVES_MAX,
    OUTCOMES,
    STANDARD_MILESTONES,
    milestone_label,
)
from lessons.services import (
    attachments,
    packet_documents,
    packets,
    recommendations,
    spreadsheet,
    workbooks,
)
from lessons.services import exercises as service
from lessons.services import lessons as lesson_service
from lessons.views.helpers import apply_errors

bp = Blueprint("exercises", __name__, url_prefix="/exercises")


# --- list and plan -----------------------------------------------------------------------------
@bp.get("")
def index():
    when = request.args.get("when", "upcoming")
    when = when if when in service.WHEN else "upcoming"
    sort = service.EXERCISE_SORTS.parse(request.args.get("sort"))
    return render_template("exercises/index.html", exercises=service.list_exercises(
        current_user, when, sort), when=when, sort=sort,
        order=service.exercise_order(when, sort), sorts=service.EXERCISE_SORTS,
        today=service.today(), can_create=policy.can_create_exercise(current_user))


def _exercise_form(exercise: Exercise | None = None) -> ExerciseForm:
    if exercise is None:
        form = ExerciseForm()
        if not form.is_submitted():
            form.lead_nation.data = current_user.nation_code
            form.nations.data = [current_user.nation_code]
            form.planners.data = [current_user.username]
        return form
    values = service.exercise_values(exercise)
    # Custom milestones by date, as the calendar has them (undated last).
    custom = {m.name: m.due_on for m in service.milestones_in_order(exercise)
              if m.name not in STANDARD_MILESTONES}
    data = {**values, "tags": ", ".join(values["tags"]),
            "milestones": {k: v for k, v in values["milestones"].items()
                           if k in STANDARD_MILESTONES},
            "objectives": values["objectives"] + [{"id": "", "text": ""}] * BLANK_OBJECTIVES,
            "custom_milestones": [{"name": k, "due_on": v} for k, v in custom.items()]
            + [{"name": "", "due_on": None}] * BLANK_MILESTONES}
    return ExerciseForm(data={**data, "version": str(exercise.version)})


@bp.route("/new", methods=["GET", "POST"])
def new():
    if not policy.can_create_exercise(current_user):
        abort(403, "Only planners can create exercises.")
    form = _exercise_form()
    if form.is_submitted() and form.rerender_only(request.form):
        return _form_page(form, None)
    if form.validate_on_submit():
        try:
            exercise = service.create_exercise(current_user, form.contract_data())
        except ValidationFailed as exc:
            _apply_exercise_errors(form, exc.errors)
        else:
            flash("Exercise created.", "success")
            return redirect(url_for("exercises.detail", public_id=exercise.public_id))
    return _form_page(form, None, status=422 if form.is_submitted() else 200)


def _form_page(form: ExerciseForm, exercise: Exercise | None, *, status: int = 200,
               **extra):
    """The plan/edit form. A re-render button (one more objective box, the planner list
    for the nations typed so far) posts here too: it shows the form again with what was
    typed, one box more where asked, and stores nothing (200, no error messages)."""
    if form.is_submitted() and form.rerender_only(request.form) == "add_objective":
        form.add_objective_box()
    if form.is_submitted():
        nations = form.candidate_nations()
    else:
        nations = list(exercise.nations) if exercise else [current_user.nation_code]
    keep = list(exercise.planners) if exercise else [current_user]
    return render_template(
        "exercises/form.html", form=form, exercise=exercise,
        planner_choices=service.planner_candidates(current_user, nations, keep),
        chosen_planners=set(form.planners.data or []),
        objectives_max=OBJECTIVES_MAX, **extra), status


def _apply_exercise_errors(form: ExerciseForm, errors: dict[str, str]) -> None:
    """Errors on the nested parts show at their fieldsets; the rest beside their fields."""
    nested = {k: v for k, v in errors.items() if k in ("objectives", "milestones")}
    apply_errors(form, {k: v for k, v in errors.items() if k not in nested})
    for key, message in nested.items():
        form.form_errors.append(f"{key.capitalize()}: {message}")


@bp.get("/<public_id>")
def detail(public_id: str):
    return _detail_page(service.get_exercise(current_user, public_id))


def _detail_page(exercise: Exercise, *, status: int = 200,
                 step_errors: dict[str, str] | None = None):
    links = service.visible_links(current_user, exercise)
    return render_template(
        "exercises/detail.html", exercise=exercise, links=links,
        withdrawn_links=service.withdrawn_by_originator(current_user, exercise),
        can_edit=policy.can_edit_exercise(current_user, exercise),
        can_write=policy.can_write_observation_for(current_user, exercise),
        loop=service.loop_summary(current_user, exercise, links),
        observations=service.observations(current_user, exercise),
        history=service.history(current_user, exercise),
        requests=packets.requests_for(current_user, exercise),
        timeline=_timeline(exercise), today=service.today(), steps=LINK_STEPS,
        outcomes=OUTCOMES, step_form=StepForm(formdata=None), empty_form=EmptyForm(),
        outcomes_open=service.outcomes_open(exercise),
        deciders={link.lesson_id for link in links if link.confirmation == "pending"
                  and service.can_decide_outcome(current_user, link)},
        decision_form=DecisionForm(formdata=None),
        step_errors=step_errors or {}, milestone_label=milestone_label), status


def _timeline(exercise: Exercise) -> dict:
    """Milestones placed on a line from the earliest date shown to the latest, with today
    marked: percentages for the no-JavaScript bar, days for the table beside it."""
    today = service.today()
    ordered = service.milestones_in_order(exercise)
    dated = [m for m in ordered if m.due_on]
    points = [m.due_on for m in dated] + [exercise.starts_on, exercise.ends_on, today]
    first, last = min(points), max(points)
    span = max((last - first).days, 1)

    def at(day: date) -> float:
        return round(100 * (day - first).days / span, 2)

    return {
        "first": first, "last": last, "today_at": at(today),
        "exercise_at": (at(exercise.starts_on), at(exercise.ends_on)),
        "milestones": [{"milestone": m, "label": milestone_label(m.name), "at": at(m.due_on),
                        "days": (m.due_on - today).days} for m in dated],
        "undated": [milestone_label(m.name) for m in ordered if not m.due_on],
    }


@bp.route("/<public_id>/edit", methods=["GET", "POST"])
def edit(public_id: str):
    exercise = service.get_exercise(current_user, public_id)
    policy.require_edit_exercise(current_user, exercise)
    form = ExerciseForm() if request.method == "POST" else _exercise_form(exercise)
    if form.is_submitted() and form.rerender_only(request.form):
        return _form_page(form, exercise)
    expected = form.posted_version() if form.is_submitted() else None
    if form.validate_on_submit():
        try:
            service.update_exercise(current_user, public_id, form.contract_data(),
                                    expected_version=expected)
        except ValidationFailed as exc:
            _apply_exercise_errors(form, exc.errors)
        except PreconditionFailed:
            # Someone saved first: keep what this planner typed, show the newer version's
            # number, and let a second save be a deliberate choice. Nothing was stored.
            exercise = service.get_exercise(current_user, public_id)
            form.version.data = str(exercise.version)
            return _form_page(form, exercise, status=409, conflict=True)
        else:
            flash("Changes saved.", "success")
            return redirect(url_for("exercises.detail", public_id=public_id))
    return _form_page(form, exercise, status=422 if form.is_submitted() else 200)


# --- recommendations and attaching -----------------------------------------------------------
@bp.get("/<public_id>/recommendations")
def recommended(public_id: str):
    exercise = service.get_exercise(current_user, public_id)
    flt = recommendations.RecommendationFilter.from_args(request.args)
    items = recommendations.recommend(current_user, public_id, flt, limit=30)
    return render_template("exercises/recommendations.html", exercise=exercise, items=items,
                           flt=flt, kinds=KINDS, domains=DOMAINS,
                           can_edit=policy.can_edit_exercise(current_user, exercise))


def _attach_choices(form: AttachForm, exercise: Exercise) -> None:
    form.objective.choices = [SelectChoice("", "—")] + [
        SelectChoice(o.public_id, f"{o.position}. {o.text[:90]}") for o in exercise.objectives]
    form.milestone.choices = [SelectChoice(m.name, milestone_label(m.name)
                                           + (f" ({m.due_on.isoformat()})" if m.due_on else ""))
                              for m in service.milestones_in_order(exercise)]


@bp.get("/attach")
def attach_start():
    """The lesson page's "add to exercise" picker lands here (a GET form cannot choose
    its own address)."""
    exercise_id = request.args.get("exercise", "")
    lesson_id = request.args.get("lesson", "")
    if not exercise_id or not lesson_id:
        abort(400, "Choose an exercise.")
    return redirect(url_for("exercises.attach", public_id=exercise_id, lesson=lesson_id))


@bp.route("/<public_id>/attach", methods=["GET", "POST"])
def attach(public_id: str):
    exercise = service.get_exercise(current_user, public_id)
    policy.require_edit_exercise(current_user, exercise)
    lesson = lesson_service.get_lesson(current_user, request.args.get("lesson", ""))
    form = AttachForm()
    _attach_choices(form, exercise)
    if not form.is_submitted():
        form.milestone.data = attachments.default_milestone(exercise)
        form.objective.data = request.args.get("objective", "")
    if form.validate_on_submit():
        try:
            link = attachments.attach_lesson(current_user, public_id, lesson.public_id,
                                             form.data)
        except ValidationFailed as exc:
            apply_errors(form, exc.errors)
        else:
            flash(_attached_message(link), "success")
            return redirect(url_for("exercises.detail", public_id=public_id) + "#lessons")
    status = 422 if form.is_submitted() else 200
    return render_template("exercises/attach.html", exercise=exercise, lesson=lesson,
                           form=form, link=None), status


def _attached_message(link: ExerciseLesson) -> str:
    """Says when the lesson reaches a packet: ``packets.PACKET_STATUSES`` leaves proposed
    lessons out until a planner accepts them."""
    where = (f"the {milestone_label(link.milestone.name)} read-ahead packet"
             if link.milestone else "a read-ahead packet")
    return (f"Lesson attached as proposed. It enters {where} once a planner marks it "
            "accepted.")


@bp.route("/<public_id>/lessons/<lesson_id>/edit", methods=["GET", "POST"])
def edit_link(public_id: str, lesson_id: str):
    exercise = service.get_exercise(current_user, public_id)
    policy.require_edit_exercise(current_user, exercise)
    link = attachments.get_link(current_user, public_id, lesson_id)
    form = AttachForm(data=None if request.method == "POST" else {
        "purpose": link.purpose, "note": link.note,
        "objective": link.objective.public_id if link.objective else "",
        "milestone": link.milestone.name if link.milestone else ""})
    _attach_choices(form, exercise)
    if form.validate_on_submit():
        try:
            attachments.update_link(current_user, public_id, lesson_id, form.data)
        except ValidationFailed as exc:
            apply_errors(form, exc.errors)
        else:
            flash("Saved.", "success")
            return redirect(url_for("exercises.detail", public_id=public_id) + "#lessons")
    status = 422 if form.is_submitted() else 200
    return render_template("exercises/attach.html", exercise=exercise, lesson=link.lesson,
                           form=form, link=link), status


@bp.post("/<public_id>/lessons/<lesson_id>/step")
def step(public_id: str, lesson_id: str):
    exercise = service.get_exercise(current_user, public_id)
    form = StepForm()
    if not form.validate_on_submit():
        abort(400, "The form was incomplete or expired; reload the page and try again.")
    try:
        link = attachments.update_link(current_user, public_id, lesson_id, {},
                                       to=form.to.data or "", evidence=form.note.data or "")
    except ValidationFailed as exc:
        return _detail_page(exercise, status=422,
                            step_errors={lesson_id: " ".join(exc.errors.values())})
    flash(_step_message(link), "success")
    return redirect(url_for("exercises.detail", public_id=public_id) + f"#link-{lesson_id}")


def _step_message(link: ExerciseLesson) -> str:
    if link.status == "effective" and link.confirmation == "confirmed":
        return "Outcome recorded: effective. The lesson is now learned."
    if link.status == "effective" and link.confirmation == "pending":
        where = (f" on {link.lesson.origin_instance} (the outcome goes there with the next "
                 "bundle)" if link.lesson.origin_instance else "")
        return (f"Outcome recorded: effective. An analyst of {link.lesson.originator_nation}"
                f"{where} will confirm it before the lesson is recorded as learned.")
    if link.status == "effective":
        return "Outcome recorded: effective."
    if link.status == "not_effective":
        return "Outcome recorded: not effective. The lesson stays open."
    return f"Lesson {link.status} in this exercise."


@bp.post("/<public_id>/lessons/<lesson_id>/remove")
def remove_link(public_id: str, lesson_id: str):
    if not EmptyForm().validate_on_submit():
        abort(400, "The form expired; reload the page and try again.")
    attachments.detach_lesson(current_user, public_id, lesson_id)
    flash("Lesson removed from the exercise.", "success")
    return redirect(url_for("exercises.detail", public_id=public_id) + "#lessons")


@bp.route("/<public_id>/attach-by-tag", methods=["GET", "POST"])
def by_tag(public_id: str):
    """Preview (GET) every validated lesson with a tag not yet attached; POST attaches the
    ones ticked in the preview."""
    exercise = service.get_exercise(current_user, public_id)
    policy.require_edit_exercise(current_user, exercise)
    form = ByTagForm()
    _attach_choices(form, exercise)
    tag = (request.form.get("tag") if form.is_submitted() else request.args.get("tag")) or ""
    candidates = attachments.by_tag_candidates(current_user, public_id, tag) if tag.strip() \
        else []
    if not form.is_submitted():
        form.tag.data = tag
        form.milestone.data = attachments.default_milestone(exercise)
        form.purpose.data = "read_ahead"
        form.lesson_ids.data = [lesson.public_id for lesson in candidates]
    elif form.validate_on_submit():
        try:
            links = attachments.attach_by_tag(current_user, public_id, tag,
                                              form.lesson_ids.data or [], form.data)
        except ValidationFailed as exc:
            apply_errors(form, exc.errors)
        else:
            flash(f"{len(links)} lesson{'' if len(links) == 1 else 's'} tagged "
                  f"\u201c{tag}\u201d attached as proposed; each enters the read-ahead "
                  "packet once a planner marks it accepted.", "success")
            return redirect(url_for("exercises.detail", public_id=public_id) + "#lessons")
    status = 422 if form.is_submitted() else 200
    return render_template("exercises/by_tag.html", exercise=exercise, form=form, tag=tag,
                           candidates=candidates), status


# --- packets and release requests ---------------------------------------------------------
@bp.get("/<public_id>/packet")
def packet(public_id: str):
    exercise = service.get_exercise(current_user, public_id)
    milestone = request.args.get("milestone") or attachments.default_milestone(exercise)
    audience = request.args.getlist("audience")
    try:
        result = packets.packet(current_user, public_id, milestone,
                                ",".join(audience) if audience else None,
                                current_app.config["CLASSIFICATIONS"])
    except ValidationFailed as exc:
        return render_template("errors/error.html", status=422, title="Choose another audience",
                               message=exc.errors.get("audience", exc.message)), 422
    fmt = request.args.get("format", "html")
    if fmt == "json":
        return _packet_download(result, "json")
    if fmt == "csv":
        return _packet_download(result, "csv")
    if fmt == "xlsx":
        download = workbooks.packet(current_user, result)
        packets.record_export(current_user, result, "xlsx")
        return download.response()
    if fmt in packet_documents.FORMATS:
        return _packet_document(result, fmt)
    pending = {r.lesson_id for r in packets.requests_for(current_user, exercise)
               if r.status == "pending"}
    return render_template("exercises/packet.html", packet=result, exercise=exercise,
                           can_edit=policy.can_edit_exercise(current_user, exercise),
                           pending=pending, milestones=service.milestones_in_order(exercise),
                           request_form=ReleaseRequestForm(formdata=None),
                           milestone_label=milestone_label,
                           PERMANENCE_LABELS=packet_documents.PERMANENCE_LABELS,
                           withheld_words=packet_documents.withheld_in_words(result))


def _packet_download(result: packets.Packet, fmt: str) -> Response:
    packets.record_export(current_user, result, fmt)
    name = f"{result.exercise.name}-{result.milestone.name}".replace(" ", "-")
    name = "".join(ch for ch in name if ch.isalnum() or ch in "-_")[:80] or "packet"
    if fmt == "json":
        body = json.dumps(packets.packet_document(result), ensure_ascii=False, indent=2)
        return Response(body, mimetype="application/json", headers={
            "Content-Disposition": f'attachment; filename="{name}.json"'})
    return Response(spreadsheet.packet_csv(result), mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="{name}.csv"'})


def _packet_document(result: packets.Packet, fmt: str) -> Response | tuple[str, int]:
    """The packet as PDF or Word: built first, audited once it exists. Dated in UTC, as
    the audit trail is."""
    today = utcnow().date()
    try:
        body = packet_documents.build(result, fmt, current_user.display_name, today)
    except ValidationFailed as exc:
        return render_template("errors/error.html", status=422, title="Packet too long",
                               message=exc.errors.get("format", exc.message)), 422
    packets.record_export(current_user, result, fmt)
    name = packet_documents.file_name(result, fmt, today)
    return Response(body, mimetype=packet_documents.FORMATS[fmt], headers={
        "Content-Disposition": f'attachment; filename="{name}"'})


@bp.post("/<public_id>/release-requests")
def request_release(public_id: str):
    form = ReleaseRequestForm()
    if not form.validate_on_submit():
        abort(400, "The form was incomplete or expired; reload the page and try again.")
    audience = [c for c in (form.audience.data or "").split(",") if c] or None
    back = url_for("exercises.packet", public_id=public_id,
                   milestone=form.milestone.data or None, audience=audience)
    try:
        packets.request_release(current_user, public_id, form.lesson_id.data or "",
                                form.nations.data or [], form.reason.data or "")
    except ValidationFailed as exc:
        return render_template("errors/error.html", status=422, title="Request not sent",
                               message=" ".join(exc.errors.values()), back=back), 422
    flash("Release request sent to the lesson's originator.", "success")
    return redirect(back)

"""``/api/v1/exercises``: plan exercises, read recommendations, attach and track lessons,
and fetch read-ahead packets, under the same policy and services as the pages."""

from __future__ import annotations

from flask import current_app, request, url_for

from lessons.api import body, bp, caller, create_once, if_match, respond
from lessons.api.lessons import lesson_json
from lessons.api.schemas import (
    AttachIn,
    ExerciseCreate,
    ExerciseList,
    ExerciseOut,
    ExercisePatch,
    LinkOut,
    LinkPatch,
    PacketOut,
    RecommendationList,
    dump,
)
from lessons.errors import ValidationFailed
from lessons.models import Exercise, ExerciseLesson
from lessons.rules import OUTCOMES
from lessons.services import attachments, packets, recommendations
from lessons.services import exercises as service


def exercise_status(exercise: Exercise) -> str:
    today = service.today()
    if exercise.starts_on > today:
        return "planned"
    return "under_way" if exercise.ends_on >= today else "completed"


def exercise_json(exercise: Exercise) -> dict:
    values = service.exercise_values(exercise)
    return dump(ExerciseOut, {
        **values, "id": exercise.public_id, "status": exercise_status(exercise),
        "version": exercise.version, "created_at": exercise.created_at,
        "updated_at": exercise.updated_at,
        # Visibility follows participation, so the participants are its REL TO.
        "marking": f"{current_app.config['CLASSIFICATIONS'][0]} // REL TO "
                   f"{', '.join(sorted(exercise.nations))}"})


def link_json(link: ExerciseLesson) -> dict:
    lesson = link.lesson
    return dump(LinkOut, {
        "lesson_id": lesson.public_id,
        "lesson": {"id": lesson.public_id, "title": lesson.title, "status": lesson.status,
                   "marking": lesson.marking},
        "purpose": link.purpose,
        "objective": {"id": link.objective.public_id, "text": link.objective.text}
        if link.objective else None,
        "milestone": link.milestone.name if link.milestone else None,
        "note": link.note, "status": link.status, "evidence": link.evidence,
        "confirmation": link.confirmation, "version": link.version,
        "steps": [{"from_status": s.from_status, "to_status": s.to_status,
                   "by": s.actor.username, "at": s.created_at, "note": s.note}
                  for s in link.steps]})


def _exercise_response(exercise: Exercise, status: int = 200):
    return respond(exercise_json(exercise), status, version=exercise.version,
                   location=url_for("api.get_exercise", public_id=exercise.public_id)
                   if status == 201 else None)


def _input(data) -> dict:
    """Body values for the services; objectives as texts or ``{"id", "text"}``."""
    values = data.model_dump(exclude_unset=True)
    if values.get("objectives") is not None:
        values["objectives"] = [o if isinstance(o, str)
                                else {"id": o.get("id", ""), "text": o["text"]}
                                for o in values["objectives"]]
    return values


@bp.get("/exercises")
def list_exercises():
    when = request.args.get("when", "all")
    if when not in service.WHEN:
        raise ValidationFailed({"when": f"Must be one of: {', '.join(service.WHEN)}."})
    items = [exercise_json(e) for e in service.list_exercises(caller(), when)]
    return respond(dump(ExerciseList, {"items": items, "total": len(items)}))


@bp.post("/exercises")
def create_exercise():
    values = _input(body(ExerciseCreate))
    return create_once(lambda: service.create_exercise(caller(), values), Exercise,
                       lambda exercise: _exercise_response(exercise, 201))


@bp.get("/exercises/<public_id>")
def get_exercise(public_id: str):
    return _exercise_response(service.get_exercise(caller(), public_id))


@bp.patch("/exercises/<public_id>")
def update_exercise(public_id: str):
    service.get_exercise(caller(), public_id)
    expected = if_match()
    values = _input(body(ExercisePatch))
    exercise = service.update_exercise(caller(), public_id, values, expected_version=expected)
    return _exercise_response(exercise)


@bp.get("/exercises/<public_id>/recommendations")
def exercise_recommendations(public_id: str):
    flt = recommendations.RecommendationFilter.from_args(request.args)
    items = recommendations.recommend(caller(), public_id, flt, limit=50)
    return respond(dump(RecommendationList, {"items": [
        {"lesson": lesson_json(item.lesson), "score": item.score, "reasons": item.reasons,
         "releasable_to_all": item.releasable_to_all,
         "missing_release": item.missing_release} for item in items]}))


@bp.get("/exercises/<public_id>/lessons")
def exercise_lessons(public_id: str):
    exercise = service.get_exercise(caller(), public_id)
    return respond({"items": [link_json(link)
                              for link in service.visible_links(caller(), exercise)]})


@bp.post("/exercises/<public_id>/lessons")
def attach_lesson(public_id: str):
    service.get_exercise(caller(), public_id)
    data = body(AttachIn)
    values = data.model_dump(exclude_unset=True, exclude={"lesson_id"})
    link = attachments.attach_lesson(caller(), public_id, data.lesson_id, values)
    return respond(link_json(link), 201, version=link.version,
                   location=url_for("api.get_exercise_lesson", public_id=public_id,
                                    lesson_id=link.lesson.public_id))


@bp.get("/exercises/<public_id>/lessons/<lesson_id>")
def get_exercise_lesson(public_id: str, lesson_id: str):
    link = attachments.get_link(caller(), public_id, lesson_id)
    return respond(link_json(link), version=link.version)


@bp.patch("/exercises/<public_id>/lessons/<lesson_id>")
def update_exercise_lesson(public_id: str, lesson_id: str):
    attachments.get_link(caller(), public_id, lesson_id)
    expected = if_match()
    data = body(LinkPatch)
    values = data.model_dump(exclude_unset=True, exclude={"status", "evidence"})
    if data.evidence is not None and data.status not in OUTCOMES:
        raise ValidationFailed({"evidence": "Evidence goes with an outcome: status effective "
                                            "or not_effective."})
    link = attachments.update_link(caller(), public_id, lesson_id, values, to=data.status,
                                   evidence=data.evidence or "", expected_version=expected)
    return respond(link_json(link), version=link.version)


@bp.get("/exercises/<public_id>/packet")
def exercise_packet(public_id: str):
    exercise = service.get_exercise(caller(), public_id)
    milestone = request.args.get("milestone") or attachments.default_milestone(exercise)
    result = packets.packet(caller(), public_id, milestone, request.args.get("audience"),
                            current_app.config["CLASSIFICATIONS"])
    packets.record_export(caller(), result, "json (API)")
    return respond(dump(PacketOut, packets.packet_document(result)))

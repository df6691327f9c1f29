"""The home page: what needs the user's attention."""

from __future__ import annotations

from flask import Blueprint, render_template
from flask_login import current_user

from lessons.services.lessons import LessonFilter, count_lessons, list_lessons

bp = Blueprint("main", __name__)


@bp.get("/")
def index():
    drafts = count_lessons(current_user, LessonFilter(tab="mine", status="draft"))
    mine = count_lessons(current_user, LessonFilter(tab="mine"))
    to_review = (count_lessons(current_user, LessonFilter(tab="review"))
                 if current_user.has_role("analyst") else None)
    recent = list_lessons(current_user, LessonFilter(tab="all", status="validated"),
                          per_page=8).items
    return render_template("main/index.html", drafts=drafts, mine=mine,
                           to_review=to_review, recent=recent)

"""The home page: what needs the user's attention (``services.worklist``)."""

from __future__ import annotations

from flask import Blueprint, render_template
from flask_login import current_user

from lessons.services import worklist as worklist_service
from lessons.services.lessons import LessonFilter, list_lessons

bp = Blueprint("main", __name__)


@bp.get("/")
def index():
    recent = list_lessons(current_user, LessonFilter(tab="all", status="validated"),
                          per_page=8).items
    return render_template("main/index.html", work=worklist_service.worklist(current_user),
                           link_args=worklist_service.link_args, recent=recent)

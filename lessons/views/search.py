"""Search page and its download."""

from __future__ import annotations

from flask import Blueprint, Response, render_template, request, stream_with_context
from flask_login import current_user

from lessons import search
from lessons.services import exchange

bp = Blueprint("search", __name__, url_prefix="/search")

PER_PAGE = 20


@bp.get("")
def index():
    text = request.args.get("q", "")
    page = request.args.get("page", 1, type=int) or 1
    result = search.search_lessons(current_user, text, page=page, per_page=PER_PAGE)
    return render_template("search/index.html", result=result)


@bp.get("/export")
def export():
    """Every result of the query the user may see, in the exchange format."""
    text = request.args.get("q", "")
    ids = search.matching_ids(current_user, text)
    lines = exchange.export_lines(current_user, ids)
    return Response(stream_with_context(lines), mimetype="application/x-ndjson",
                    headers={"Content-Disposition": 'attachment; filename="lessons.jsonl"'})

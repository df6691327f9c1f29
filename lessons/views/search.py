"""Search page and its download."""

from __future__ import annotations

from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask_login import current_user

from lessons import policy, search
from lessons.errors import NotFound, ValidationFailed
from lessons.forms.watches import WatchForm
from lessons.models import Exercise
from lessons.rules import ATTACHABLE_STATUSES, QUERY_MAX
from lessons.services import exchange, spreadsheet, watches, workbooks
from lessons.services import exercises as exercise_service
from lessons.services import glossary as glossary_service
from lessons.views.paging import page_arg

bp = Blueprint("search", __name__, url_prefix="/search")

DEFAULT_PER_PAGE = 20


@bp.record_once
def _glossary_source(state) -> None:
    """Give the search package the admins' glossary for callers that pass none (the
    CLI, benchmarks): the package imports nothing of the services."""
    state.app.extensions.setdefault(search.GLOSSARY_SOURCE, glossary_service.current)


def _state() -> dict:
    """The search as the URL holds it (words, facet filters, sort, page size)."""
    per_page = request.args.get("per_page", DEFAULT_PER_PAGE, type=int)
    return {
        "text": request.args.get("q", ""),
        "filters": search.clean_filters({name: request.args.getlist(name)
                                         for name in search.FACETS}),
        "sort": request.args.get("sort", "relevance"),
        "per_page": per_page if per_page in search.PER_PAGE_CHOICES else DEFAULT_PER_PAGE,
    }


@bp.get("")
def index():
    return _page()


def _page(watch_form: WatchForm | None = None, failed_status: int | None = None):
    state = _state()
    page = page_arg(search.MAX_PAGE)
    status = 200
    try:
        result = search.search_lessons(current_user, state["text"], page=page,
                                       per_page=state["per_page"], filters=state["filters"],
                                       sort=state["sort"], glossary=glossary_service.current())
    except search.TooBroad as exc:
        # The search page again, with the words kept for narrowing and the reason shown.
        result = search.SearchPage(query=state["text"], per_page=state["per_page"],
                                   sort=state["sort"], notice=exc.message)
        status = exc.status
    return render_template("search/index.html", result=result,
                           per_page_choices=search.PER_PAGE_CHOICES, query_max=QUERY_MAX,
                           attach_to=_attach_target(), attachable=ATTACHABLE_STATUSES,
                           watch_form=watch_form or WatchForm(formdata=None),
                           ), failed_status or status


@bp.post("/watch")
def watch():
    """Watch the search the URL holds under the name posted: the owner is told once a
    day of new lessons matching it (``flask notify send``)."""
    form = WatchForm()
    if form.validate_on_submit():
        state = _state()
        try:
            saved = watches.save_watch(current_user, form.name.data or "", state["text"],
                                       state["filters"], state["sort"])
        except ValidationFailed as exc:
            form.name.errors = [*form.name.errors, *exc.errors.values()]
        else:
            flash(f"You watch this search as \u201c{saved.name}\u201d: new lessons matching "
                  "it are notified once a day.", "success")
            return redirect(watches.search_path(saved))
    return _page(form, 422)


def _attach_target() -> Exercise | None:
    """``?exercise=`` (from an exercise's "search lessons for it" link): each result then
    offers "attach", if the user plans that exercise; otherwise the search is plain."""
    public_id = request.args.get("exercise", "")
    if not public_id:
        return None
    try:
        exercise = exercise_service.get_exercise(current_user, public_id)
    except NotFound:
        return None
    return exercise if policy.can_edit_exercise(current_user, exercise) else None


@bp.get("/export")
def export():
    """Every result of the search the user may see, in the exchange format: JSON Lines,
    or CSV with ``format=csv``; or as a readable workbook with ``format=xlsx``. Audited
    by the service (who, how many, which format; not the words, which could name a
    lesson another reader of the trail may not see)."""
    state = _state()
    ids = search.matching_ids(current_user, state["text"], filters=state["filters"],
                              glossary=glossary_service.current())
    if request.args.get("format") == "csv":
        rows = spreadsheet.export_rows(exchange.export_lessons(
            current_user, ids, what="search results", fmt="csv"))
        return Response(stream_with_context(rows), mimetype="text/csv", headers={
            "Content-Disposition": 'attachment; filename="lessons.csv"'})
    if request.args.get("format") == "xlsx":
        return _workbook(state, ids)
    lines = exchange.export_lines(current_user, ids, what="search results", fmt="jsonl")
    return Response(stream_with_context(lines), mimetype="application/x-ndjson",
                    headers={"Content-Disposition": 'attachment; filename="lessons.jsonl"'})


def _workbook(state: dict, ids: list[int]) -> Response:
    """The search results as a readable workbook, audited as the other downloads are."""
    lessons = exchange.export_lessons(current_user, ids, what="search results", fmt="xlsx")
    download = workbooks.search_results(current_user, lessons, state["text"],
                                        state["filters"], current_app.config["CLASSIFICATIONS"])
    return download.response()


@bp.app_template_global()
def search_url(result: search.SearchPage, endpoint: str = "search.index", *,
               add: tuple[str, str] | None = None, remove: tuple[str, str] | None = None,
               **changes) -> str:
    """The URL of ``result``'s search with one filter added or removed, or the sort,
    page size or page changed; a new filter or sort goes back to page 1."""
    filters = {name: list(values) for name, values in result.filters.items()}
    if add:
        filters.setdefault(add[0], [])
        if add[1] not in filters[add[0]]:
            filters[add[0]].append(add[1])
    if remove:
        filters[remove[0]] = [v for v in filters.get(remove[0], []) if v != remove[1]]
    args = {"q": result.query or None, **{k: v for k, v in filters.items() if v},
            "sort": result.sort if result.sort != "relevance" else None,
            "per_page": result.per_page if result.per_page != DEFAULT_PER_PAGE else None}
    if endpoint == "search.index" and request.args.get("exercise"):
        args["exercise"] = request.args["exercise"][:16]
    args.update(changes)
    if endpoint == "search.index" and "page" not in changes and not (add or remove):
        args.setdefault("page", None)
    return url_for(endpoint, **{k: v for k, v in args.items() if v is not None})

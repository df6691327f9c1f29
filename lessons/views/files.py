"""A lesson's files: upload, download, removal. Thin: parse, call ``services.files``.

Downloads are always attachments, typed as the content was found to be (text as
``text/plain``, never HTML), with ``nosniff`` and a sandboxing CSP, so no file can run as
a page of this site; like every page they are ``Cache-Control: no-store`` (private, and
kept by no cache).
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, request, send_file, url_for
from flask_login import current_user

from lessons import policy
from lessons.errors import ValidationFailed
from lessons.forms.files import FileUploadForm, RemoveFileForm
from lessons.services import files
from lessons.services import lessons as lesson_service
from lessons.views.helpers import apply_errors
from lessons.views.lessons import _detail_page

bp = Blueprint("files", __name__, url_prefix="/lessons")


@bp.url_value_preprocessor
def _upload_size_limit(endpoint: str | None, values: dict | None) -> None:  # noqa: ARG001
    """An upload may carry one file at its configured limit (MUSTER_FILE_MAX_MB), more
    than other forms' MAX_CONTENT_LENGTH. Set here, before any ``before_request`` hook
    (the CSRF check, the NUL check) reads the form and so fixes the limit."""
    if endpoint == "files.upload":
        request.max_content_length = files.request_limit()


def _lesson_anchor(public_id: str) -> str:
    return url_for("lessons.detail", public_id=public_id) + "#files"


@bp.post("/<public_id>/files")
def upload(public_id: str):
    lesson = lesson_service.get_lesson(current_user, public_id)
    policy.require_edit(current_user, lesson)
    form = FileUploadForm()
    if form.validate_on_submit():
        upload = form.file.data
        try:
            item = files.upload_file(current_user, public_id, upload.filename or "",
                                     upload.read())
        except ValidationFailed as exc:
            apply_errors(form, exc.errors)
        else:
            flash(f"Attached {item.original_name}.", "success")
            return redirect(_lesson_anchor(public_id))
    lesson = lesson_service.get_lesson(current_user, public_id)
    return _detail_page(lesson, status=422, file_form=form)


@bp.get("/<public_id>/files/<file_id>")
def download(public_id: str, file_id: str):
    item, path = files.get_file(current_user, public_id, file_id)
    response = send_file(path, mimetype=item.media_type, as_attachment=True,
                         download_name=item.original_name, conditional=False, etag=False,
                         max_age=0)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


@bp.post("/<public_id>/files/<file_id>/remove")
def remove(public_id: str, file_id: str):
    if not RemoveFileForm().validate_on_submit():
        abort(400, "The form expired; reload the page and try again.")
    item = files.remove_file(current_user, public_id, file_id)
    flash(f"Removed {item.original_name}.", "success")
    return redirect(_lesson_anchor(public_id))

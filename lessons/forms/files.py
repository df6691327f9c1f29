"""Forms for a lesson's files: the upload, and the CSRF-only form of each removal."""

from __future__ import annotations

from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired

from lessons.filetypes import ACCEPTED_EXTENSIONS


class FileUploadForm(FlaskForm):
    # What the file is, is judged from its content by the service; ``accept`` only spares
    # a user picking a file Muster would refuse.
    file = FileField("File", validators=[FileRequired("Choose a file to upload.")],
                     description="Slides (.pptx), photos (.png, .jpg), PDFs and documents "
                                 "(.docx, .xlsx, .txt).",
                     render_kw={"accept": ",".join(f".{ext}" for ext in ACCEPTED_EXTENSIONS)})


class RemoveFileForm(FlaskForm):
    """No fields: the token alone, so a removal cannot be forged from another site."""

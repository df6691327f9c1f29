"""Files attached to lessons: slides, photos, PDFs and documents a staff keeps with a lesson.

The bytes live on disk under ``FILES_DIR`` (outside the web root), named by a random
``storage_key`` and never by the uploader's name; this row holds what the app needs to
serve, list and search them. Who may fetch one is the lesson's business: a file is
served exactly to those ``policy.can_view`` lets see its lesson (``services/files.py``).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from lessons.extensions import db
from lessons.models.base import new_public_id, utcnow
from lessons.models.user import User
from lessons.rules import FILE_NAME_MAX


class LessonFile(db.Model):
    __tablename__ = "lesson_files"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(16), unique=True, default=new_public_id)
    lesson_id: Mapped[int] = mapped_column(ForeignKey("lessons.id", ondelete="CASCADE"),
                                           index=True)
    # The uploader's name, sanitised (no folders, no control characters), for display and
    # the download's Content-Disposition only.
    original_name: Mapped[str] = mapped_column(String(FILE_NAME_MAX))
    # What the content is (sniffed from its bytes), never what the client said.
    media_type: Mapped[str] = mapped_column(String(120))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    # The file's name under FILES_DIR: random, unique, and unrelated to the upload's name.
    storage_key: Mapped[str] = mapped_column(String(64), unique=True)
    uploaded_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    uploaded_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # The document's words (bounded), indexed with the lesson; deferred: pages listing
    # files never load it.
    extracted_text: Mapped[str] = mapped_column(Text, default="", deferred=True)

    uploaded_by: Mapped[User] = relationship(lazy="joined")

    @property
    def kind_label(self) -> str:
        """What the page calls it ("PDF", "Word document"), from the detected type."""
        from lessons.filetypes import BY_MEDIA_TYPE

        found = BY_MEDIA_TYPE.get(self.media_type)
        return found.label if found else self.media_type

    @property
    def size_label(self) -> str:
        if self.size < 1024:
            return f"{self.size} bytes"
        if self.size < 1024 * 1024:
            return f"{self.size / 1024:.0f} KB"
        return f"{self.size / (1024 * 1024):.1f} MB"

    def __repr__(self) -> str:
        return f"<LessonFile {self.public_id} {self.media_type}>"

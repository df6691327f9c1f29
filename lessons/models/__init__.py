"""ORM models. Import from here so every table is registered before use."""

from lessons.models.audit import AuditRecord
from lessons.models.lesson import Lesson, RemedialAction, Tag
from lessons.models.nation import Nation, NationGroup
from lessons.models.outbox import IndexOutbox
from lessons.models.user import User

__all__ = [
    "AuditRecord", "IndexOutbox", "Lesson", "Nation", "NationGroup", "RemedialAction", "Tag",
    "User",
]

"""ORM models. Import from here so every table is registered before use."""

from lessons.models.audit import AuditRecord
from lessons.models.changes import ChangeLog, ChangeLogHead, SearchIndex
from lessons.models.exercise import (
    Exercise,
    ExerciseLesson,
    ExerciseLessonStep,
    ExerciseNation,
    Milestone,
    Objective,
    ReleaseRequest,
)
from lessons.models.federation import Peer, PeerBundle, PeerLesson
from lessons.models.glossary import GlossaryGroup, GlossaryState
from lessons.models.idempotency import IdempotentRequest
from lessons.models.lesson import Lesson, RemedialAction, Tag
from lessons.models.lesson_file import LessonFile
from lessons.models.link import LessonLink
from lessons.models.nation import Nation, NationGroup
from lessons.models.notification import Notification, NotificationPreference
from lessons.models.partner import PartnerRequest, ReturnMessage
from lessons.models.token import ApiToken, StagedImport
from lessons.models.user import User
from lessons.models.watch import WatchedSearch, WatchedSearchHit

__all__ = [
    "ApiToken", "AuditRecord", "ChangeLog", "ChangeLogHead", "Exercise", "ExerciseLesson",
    "ExerciseLessonStep", "ExerciseNation", "GlossaryGroup", "GlossaryState",
    "IdempotentRequest", "Lesson", "LessonFile", "LessonLink",
    "Milestone", "Nation", "NationGroup", "Notification", "NotificationPreference",
    "Objective", "PartnerRequest", "Peer", "PeerBundle", "PeerLesson", "ReleaseRequest",
    "RemedialAction", "ReturnMessage",
    "SearchIndex", "StagedImport", "Tag", "User", "WatchedSearch", "WatchedSearchHit",
]

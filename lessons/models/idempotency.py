"""Answers to API creates sent with an ``Idempotency-Key``, kept for 24 hours so a client
that lost the connection can send the same request again without creating twice."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, DateTime, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from lessons.extensions import db
from lessons.models.base import utcnow


class IdempotentRequest(db.Model):
    __tablename__ = "idempotent_requests"
    # A key is the client's: two users' keys never meet.
    __table_args__ = (UniqueConstraint("user_id", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(255))
    # Which operation and which body the key was first used with (SHA-256 hex digests).
    operation: Mapped[str] = mapped_column(String(100))
    body_digest: Mapped[str] = mapped_column(String(64))
    status: Mapped[int] = mapped_column(Integer)
    body: Mapped[str] = mapped_column(Text)
    headers: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)

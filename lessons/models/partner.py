"""What travels back between federated instances about one instance's own lessons.

The receiving side of a lesson keeps a ``ReturnMessage`` per outcome or release request
its planners recorded about a lesson received from a peer (and the originating side one
per decision on them) until the peer acknowledges the bundle that carried it. The
originating side stores what it received as a ``PartnerRequest``: its analysts decide it
in *To review* as they decide a local one.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, DateTime, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from lessons.extensions import db
from lessons.models.base import new_public_id, utcnow
from lessons.models.federation import Peer
from lessons.models.lesson import Lesson


class ReturnMessage(db.Model):
    """One record waiting to travel to a peer in its next bundles: an ``outcome`` or
    ``release_request`` about one of the peer's lessons, or an ``outcome_decision`` or
    ``release_decision`` on something the peer asked. ``key`` names it at the side that
    will answer (re-queueing the same key replaces its payload). Deleted once the peer
    acknowledges a bundle that carried it."""

    __tablename__ = "return_messages"
    __table_args__ = (UniqueConstraint("peer_id", "kind", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    peer_id: Mapped[int] = mapped_column(ForeignKey("peers.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(30))
    key: Mapped[str] = mapped_column(String(80))
    payload: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # The last bundle that carried it (None: not sent yet).
    sequence: Mapped[int | None] = mapped_column(Integer)


class PartnerRequest(db.Model):
    """An outcome (``kind`` outcome) or a wider-release request (``kind`` release) that a
    peer's planner recorded about one of this instance's lessons, in a partner exercise
    held on the peer. Decided here by the lesson's originator analysts; the decision
    travels back as a ``ReturnMessage``."""

    __tablename__ = "partner_requests"
    __table_args__ = (UniqueConstraint("peer_id", "kind", "remote_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(16), unique=True, default=new_public_id)
    peer_id: Mapped[int] = mapped_column(ForeignKey("peers.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    # The record's id at the peer, named again in the decision sent back.
    remote_id: Mapped[str] = mapped_column(String(80))
    lesson_id: Mapped[int] = mapped_column(ForeignKey("lessons.id", ondelete="CASCADE"),
                                           index=True)
    exercise_name: Mapped[str] = mapped_column(String(200))
    exercise_starts: Mapped[str] = mapped_column(String(10), default="")
    exercise_ends: Mapped[str] = mapped_column(String(10), default="")
    planner_nation: Mapped[str] = mapped_column(String(10))
    # ``effective`` / ``not_effective`` for an outcome; empty for a release request.
    result: Mapped[str] = mapped_column(String(20), default="")
    nations: Mapped[list] = mapped_column(JSON, default=list)
    text: Mapped[str] = mapped_column(Text, default="")
    # pending → confirmed | declined (outcome) or approved | declined (release);
    # ``noted`` for a not-effective outcome, which asks for no decision.
    status: Mapped[str] = mapped_column(String(20), default="pending", index=True)
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime)
    decision_note: Mapped[str] = mapped_column(Text, default="")
    received_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # Bumped by the decision: of two analysts deciding at once, exactly one decides.
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")

    peer: Mapped[Peer] = relationship(lazy="joined", innerjoin=True)
    lesson: Mapped[Lesson] = relationship(lazy="joined", innerjoin=True)

    __mapper_args__ = {"version_id_col": version, "version_id_generator": False}

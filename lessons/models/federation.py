"""Federation: the peers this instance exchanges lessons with, and what it sent each one.

A lesson received from a peer is an ordinary ``lessons`` row whose ``origin_instance`` is
set (``models/lesson.py``); the policy keeps such lessons read-only here.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, ForeignKey, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from lessons.extensions import db
from lessons.models.base import utcnow


class Peer(db.Model):
    """Another Muster instance: its name, the nations it serves, its signing key."""

    __tablename__ = "peers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    # Comma separated nation codes (a handful, read whole each time).
    nations_csv: Mapped[str] = mapped_column(String(400))
    # The raw 32-byte Ed25519 public key, base64 (44 characters).
    public_key: Mapped[str] = mapped_column(String(64))
    url: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # Bundles this instance wrote for the peer (last sequence number) and the last one
    # the peer acknowledged; bundles it received from the peer (last applied).
    last_out_sequence: Mapped[int] = mapped_column(Integer, default=0)
    last_out_at: Mapped[datetime | None] = mapped_column(DateTime)
    acked_sequence: Mapped[int] = mapped_column(Integer, default=0)
    last_in_sequence: Mapped[int] = mapped_column(Integer, default=0)
    last_in_at: Mapped[datetime | None] = mapped_column(DateTime)
    last_error: Mapped[str] = mapped_column(Text, default="")
    # The change log's position (epoch:number) when the lessons were last read for this
    # peer: while it has not moved, the feed answers "nothing new" without reading them.
    change_position: Mapped[str | None] = mapped_column(String(60))

    @property
    def nations(self) -> list[str]:
        return [code for code in self.nations_csv.split(",") if code]

    def __repr__(self) -> str:
        return f"<Peer {self.name}>"


class PeerLesson(db.Model):
    """What this instance last sent a peer about one of its lessons: the version (or a
    revocation) and the bundle that carried it. Revocations name only lessons found
    here, so a peer never learns the id of a lesson it was never sent."""

    __tablename__ = "peer_lessons"

    peer_id: Mapped[int] = mapped_column(ForeignKey("peers.id", ondelete="CASCADE"),
                                         primary_key=True)
    lesson_id: Mapped[int] = mapped_column(ForeignKey("lessons.id", ondelete="CASCADE"),
                                           primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    sequence: Mapped[int] = mapped_column(Integer)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    # True once the peer acknowledged ``sequence`` (or a later bundle): not sent again
    # until the lesson changes.
    acked: Mapped[bool] = mapped_column(Boolean, default=False)

    peer: Mapped[Peer] = relationship(lazy="joined")


class PeerBundle(db.Model):
    """A bundle written for a peer, byte for byte, kept until the peer acknowledges it:
    the online feed serves it again, identical to the file, to a peer that asks again
    (its answer was lost) instead of writing a new bundle under the same number."""

    __tablename__ = "peer_bundles"

    peer_id: Mapped[int] = mapped_column(ForeignKey("peers.id", ondelete="CASCADE"),
                                         primary_key=True)
    sequence: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    body: Mapped[bytes] = mapped_column(LargeBinary)

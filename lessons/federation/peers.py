"""The peers this instance exchanges bundles with: registered by an operator, audited."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlparse

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from lessons.extensions import db
from lessons.federation import identity
from lessons.federation.identity import FederationError
from lessons.models import AuditRecord, Peer, PeerBundle, ReturnMessage, User
from lessons.models.base import utcnow
from lessons.rules import NATIONS_MAX
from lessons.search.schema import LOCAL_ORIGIN  # search's name for own lessons: no peer's
from lessons.services import audit
from lessons.services.lessons import locked
from lessons.services.nations import nation_codes

URL_MAX = 500
_ALREADY = "A peer named {name} is already registered; remove it first to change it."


def find(name: str, *, lock: bool = False) -> Peer | None:
    """With ``lock``, the peer's row is held until commit: its sequence numbers are read,
    decided on and written by one export or import at a time, and a second one waits and
    then sees the first one's numbers."""
    query = select(Peer).where(Peer.name == name.strip())
    return db.session.scalar(locked(query, Peer) if lock else query)


def get(name: str, *, lock: bool = False) -> Peer:
    peer = find(name, lock=lock)
    if peer is None:
        raise FederationError(f"No peer named {name!r} (see `flask federation peer list`).")
    return peer


def all_peers() -> list[Peer]:
    return list(db.session.scalars(select(Peer).order_by(Peer.name)))


def add(name: str, nations: list[str], key: str, url: str | None = None, *,
        actor: User | None = None) -> Peer:
    """Register a peer: its instance name, the nations it serves, its public key.
    ``actor``: the administrator who did it on the web page (None from the command line)."""
    name = name.strip()
    if not identity.INSTANCE_NAME.match(name):
        raise FederationError("A peer's name is its MUSTER_INSTANCE_NAME: 1 to 64 letters, "
                              "digits, dots, hyphens or underscores.")
    if name.lower() == LOCAL_ORIGIN:
        raise FederationError(f"{name!r} is reserved: search calls this instance's own "
                              f"lessons origin:{LOCAL_ORIGIN}.")
    own_name, _ = identity.instance()
    if name == own_name:
        raise FederationError(f"{name} is this instance's own name.")
    if find(name) is not None:
        raise FederationError(_ALREADY.format(name=name))
    codes = sorted({code.strip().upper() for code in nations if code.strip()})
    if not codes:
        raise FederationError("Name at least one nation the peer serves (--nation AUS).")
    if len(codes) > NATIONS_MAX:
        raise FederationError(f"At most {NATIONS_MAX} nations.")
    unknown = sorted(set(codes) - nation_codes())
    if unknown:
        raise FederationError(f"Unknown nation: {', '.join(unknown)} (three-letter codes "
                              "such as AUS; groups are not accepted here).")
    identity.decode_public(key)
    url = (url or "").strip() or None
    if url is not None:
        parsed = urlparse(url)
        if len(url) > URL_MAX or parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise FederationError(f"The URL must be an http(s) address of at most {URL_MAX} "
                                  "characters, e.g. https://muster.aus.example")
    peer = Peer(name=name, nations_csv=",".join(codes), public_key=key.strip(), url=url,
                last_out_sequence=0, acked_sequence=0, last_in_sequence=0, last_error="")
    db.session.add(peer)
    audit.record("federation_peer_added", actor=actor, subject=name,
                 comment=f"peer {name} serving {', '.join(codes)}, key "
                         f"{identity.fingerprint(peer.public_key)}"
                         + (f", at {url}" if url else ""))
    try:
        db.session.commit()
    except IntegrityError:
        # Registered by another request since ``find`` above (the name is unique).
        db.session.rollback()
        raise FederationError(_ALREADY.format(name=name)) from None
    return peer


def set_key(name: str, key: str, *, actor: User | None = None) -> Peer:
    """Give a registered peer its new public key (after `flask federation init --force`
    there), keeping its sequence numbers and what it was sent: removing and adding it
    again would start both sides' numbering afresh and the peer would refuse it."""
    identity.decode_public(key)
    peer = get(name, lock=True)
    old = identity.fingerprint(peer.public_key)
    peer.public_key = key.strip()
    peer.last_error = ""
    audit.record("federation_peer_key_changed", actor=actor, subject=peer.name,
                 comment=f"peer {peer.name} key {old} replaced by "
                         f"{identity.fingerprint(peer.public_key)}")
    db.session.commit()
    return peer


def remove(name: str, *, actor: User | None = None) -> None:
    """Forget a peer and what was sent to it (the database cascades); lessons received
    from it stay, read-only. Of two removals at once the second finds no peer: the
    DELETE itself says whether it removed one."""
    peer = get(name)
    name = peer.name
    removed = db.session.execute(delete(Peer).where(Peer.id == peer.id)).rowcount
    if not removed:
        db.session.rollback()
        raise FederationError(f"No peer named {name!r} (removed meanwhile).")
    audit.record("federation_peer_removed", actor=actor, subject=name,
                 comment=f"peer {name} removed")
    db.session.commit()


@dataclass(frozen=True)
class PeerStatus:
    """What the admins' peers page shows of one peer beside its own columns: its key's
    fingerprint and how far behind its acknowledgements are."""

    peer: Peer
    fingerprint: str
    unacknowledged: int  # bundles written for it and not acknowledged yet
    oldest_unacknowledged_at: datetime | None  # when the first of those was written
    last_ack_at: datetime | None
    # Outcomes, release requests and decisions waiting to reach it (``returns``).
    returns_waiting: int = 0

    @property
    def waiting(self) -> timedelta | None:
        """How long the oldest unacknowledged bundle has waited (None: none waits)."""
        if not self.unacknowledged or self.oldest_unacknowledged_at is None:
            return None
        return utcnow() - self.oldest_unacknowledged_at


def _audited_at(peer: Peer, action: str) -> datetime | None:
    """When the latest audit record ``action`` about ``peer`` (since it was registered:
    a peer removed and added again starts afresh) was written."""
    query = select(AuditRecord.created_at).where(
        AuditRecord.action == action, AuditRecord.subject == peer.name.lower())
    if peer.created_at is not None:
        query = query.where(AuditRecord.created_at >= peer.created_at)
    return db.session.scalar(query.order_by(AuditRecord.id.desc()).limit(1))


def status(peer: Peer) -> PeerStatus:
    unacknowledged = max(0, peer.last_out_sequence - peer.acked_sequence)
    # The bundles kept for it are exactly those it has not acknowledged.
    oldest = (db.session.scalar(select(func.min(PeerBundle.created_at)).where(
        PeerBundle.peer_id == peer.id)) if unacknowledged else None)
    return PeerStatus(peer=peer, fingerprint=identity.fingerprint(peer.public_key),
                      unacknowledged=unacknowledged, oldest_unacknowledged_at=oldest,
                      last_ack_at=_audited_at(peer, "federation_ack_received"),
                      returns_waiting=db.session.scalar(
                          select(func.count()).select_from(ReturnMessage).where(
                              ReturnMessage.peer_id == peer.id)) or 0)


def statuses() -> list[PeerStatus]:
    """Every peer with its status, by name (a handful of peers: a query or two each)."""
    return [status(peer) for peer in all_peers()]

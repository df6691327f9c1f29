"""The peers this instance exchanges bundles with: registered by an operator, audited."""

from __future__ import annotations

from urllib.parse import urlparse

from sqlalchemy import select

from lessons.extensions import db
from lessons.federation import identity
from lessons.federation.identity import FederationError
from lessons.models import Peer
from lessons.rules import NATIONS_MAX
from lessons.services import audit
from lessons.services.lessons import locked
from lessons.services.nations import nation_codes

URL_MAX = 500


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


def add(name: str, nations: list[str], key: str, url: str | None = None) -> Peer:
    """Register a peer: its instance name, the nations it serves, its public key."""
    name = name.strip()
    if not identity.INSTANCE_NAME.match(name):
        raise FederationError("A peer's name is its MUSTER_INSTANCE_NAME: 1 to 64 letters, "
                              "digits, dots, hyphens or underscores.")
    own_name, _ = identity.instance()
    if name == own_name:
        raise FederationError(f"{name} is this instance's own name.")
    if find(name) is not None:
        raise FederationError(f"A peer named {name} is already registered; remove it first "
                              "to change it.")
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
    audit.record("federation_peer_added", actor=None, subject=name,
                 comment=f"peer {name} serving {', '.join(codes)}, key "
                         f"{identity.fingerprint(peer.public_key)}"
                         + (f", at {url}" if url else ""))
    db.session.commit()
    return peer


def remove(name: str) -> None:
    """Forget a peer and what was sent to it; lessons received from it stay, read-only."""
    peer = get(name)
    db.session.delete(peer)
    audit.record("federation_peer_removed", actor=None, subject=peer.name,
                 comment=f"peer {peer.name} removed")
    db.session.commit()

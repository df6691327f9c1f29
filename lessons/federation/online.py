"""Bundles over HTTP: the feed a peer pulls from (``GET /api/v1/federation/feed``) and
the client ``flask federation sync`` pulls with.

The caller signs each request with its instance key, so no token or password is shared
between instances: the headers ``Muster-Peer`` (its instance name), ``Muster-Date``
(RFC 3339 UTC, within ``CLOCK_SKEW_SECONDS`` of the server's clock) and
``Muster-Signature`` (base64 Ed25519) over ``request_message``, which binds the method,
the path with its query, the recipient and the caller, so a signature is good for one
request to one instance for a few minutes. A request replayed in that window gets what
the caller would have got: the feed only serves bundles addressed to, and signed for,
the caller, and acknowledging twice changes nothing. The bundle itself is checked by
``apply.import_bundle`` as a file is (signature, sender, recipient, replay, gap).

``after=SEQ`` is the last bundle from this instance the caller applied: naming it
acknowledges it (as the file acknowledgement does), and the answer is bundle SEQ+1,
served again byte for byte while unacknowledged (``outbound.kept_bundle``) or made now
when the caller has everything written so far (``outbound.next_bundle``).
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import re
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from lessons.extensions import db
from lessons.federation import apply, bundles, identity, outbound, peers
from lessons.federation.apply import Applied
from lessons.federation.identity import FederationError
from lessons.models import Peer
from lessons.services import audit

FEED_PATH = "/api/v1/federation/feed"
SIGNED_PREFIX = b"muster-feed-1\n"
PEER_HEADER = "Muster-Peer"
DATE_HEADER = "Muster-Date"
SIGNATURE_HEADER = "Muster-Signature"
SEQUENCE_HEADER = "Muster-Sequence"
CLOCK_SKEW_SECONDS = 300
DATE_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
DATE_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
SIGNATURE_TEXT_MAX = 100  # base64 of the 64-byte signature is 88 characters
AFTER_MAX = 2**31 - 1
# The client's limits: how long to wait for a peer, and how much of its answer to read
# (no more than the bundle reader accepts; a problem document is far shorter).
TIMEOUT_SECONDS = 60
RESPONSE_MAX = bundles.BUNDLE_FILE_MAX
PROBLEM_MAX = 64 * 1024
CHUNK = 1024 * 1024
SYNC_MAX = 100  # bundles applied per sync run


class Refused(FederationError):
    """The feed will not answer: ``status`` is the HTTP status, the message says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def request_message(method: str, target: str, recipient: str, caller: str,
                    date: str) -> bytes:
    """What a feed request's signature covers (``target``: the path with its query)."""
    return SIGNED_PREFIX + "\n".join((method.upper(), target, recipient, caller,
                                      date)).encode("utf-8")


def _format_date(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(DATE_FORMAT)


def signed_headers(method: str, target: str, recipient: str,
                   now: datetime | None = None) -> dict[str, str]:
    """The headers that sign a request from this instance to ``recipient``."""
    name, _ = identity.instance()
    date = _format_date(now or datetime.now(UTC))
    signature = identity.sign(request_message(method, target, recipient, name, date))
    return {PEER_HEADER: name, DATE_HEADER: date,
            SIGNATURE_HEADER: base64.b64encode(signature).decode("ascii")}


# --- the server side -------------------------------------------------------------------
def authenticate(method: str, target: str, headers: Mapping[str, str]) -> Peer:
    """The registered peer that signed this request; Refused (401) naming what is wrong
    (and audited) otherwise, or (404) when this instance takes no part in federation."""
    caller = headers.get(PEER_HEADER, "")
    try:
        return _authenticate(method, target, caller, headers)
    except Refused as exc:
        if exc.status != 401:
            raise
        audit.record("federation_request_refused", actor=None,
                     subject=caller[:64] if identity.INSTANCE_NAME.match(caller) else None,
                     comment=f"{method} {target[:200]}: {exc}"[:1000])
        db.session.commit()
        raise


def _authenticate(method: str, target: str, caller: str, headers: Mapping[str, str]) -> Peer:
    date, signature_text = headers.get(DATE_HEADER, ""), headers.get(SIGNATURE_HEADER, "")
    # Unsigned is refused first, whatever else: a user's token or session is no peer's.
    if not caller or not date or not signature_text:
        raise Refused(401, f"Sign the request: send {PEER_HEADER} (your instance name), "
                           f"{DATE_HEADER} (UTC, e.g. 2026-12-06T17:00:00Z) and "
                           f"{SIGNATURE_HEADER} (your instance key's Ed25519 signature, "
                           "base64), as `flask federation sync` does.")
    try:
        name, _ = identity.instance()
    except FederationError:
        raise Refused(404, "This instance takes no part in federation.") from None
    if not identity.INSTANCE_NAME.match(caller):
        raise Refused(401, f"{PEER_HEADER} is not an instance name.")
    if not DATE_PATTERN.match(date):
        raise Refused(401, f"{DATE_HEADER} must be UTC in the form 2026-12-06T17:00:00Z.")
    try:
        moment = datetime.strptime(date, DATE_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise Refused(401, f"{DATE_HEADER} is not a real date and time.") from None
    skew = abs((datetime.now(UTC) - moment).total_seconds())
    if skew > CLOCK_SKEW_SECONDS:
        raise Refused(401, f"{DATE_HEADER} is {int(skew)} seconds away from this server's "
                           f"clock (at most {CLOCK_SKEW_SECONDS} allowed): check the "
                           "clocks, and sign each request when it is sent.")
    if len(signature_text) > SIGNATURE_TEXT_MAX:
        raise Refused(401, f"{SIGNATURE_HEADER} is too long to be a signature.")
    try:
        signature = base64.b64decode(signature_text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise Refused(401, f"{SIGNATURE_HEADER} is not base64.") from None
    peer = peers.find(caller)
    if peer is None:
        raise Refused(401, f"{caller} is not a registered peer of {name}.")
    if not identity.verify(peer.public_key, signature,
                           request_message(method, target, name, caller, date)):
        raise Refused(401, f"The signature does not match this request and the key "
                           f"registered for {caller} here.")
    return peer


@dataclass(frozen=True)
class Served:
    sequence: int
    body: bytes
    lessons: int
    revocations: int
    returns: int


def _counts(data: bytes) -> tuple[int, int, int]:
    """The counts this instance wrote into one of its own bundles' manifest."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        counts = json.loads(archive.read(bundles.MANIFEST)).get("counts") or {}
    return (int(counts.get("lessons", 0)), int(counts.get("revocations", 0)),
            int(counts.get("returns", 0)))


def feed(peer_name: str, after: int) -> Served | None:
    """Answer ``peer_name``'s request for what follows bundle ``after``: acknowledge it,
    then the bundle after it, or ``None`` when there is nothing new. Refused (409, 410)
    for an ``after`` this instance cannot follow."""
    peer = peers.get(peer_name, lock=True)
    if after > peer.last_out_sequence:
        db.session.rollback()
        raise Refused(409, f"after={after} names a bundle never written: the last bundle "
                           f"written for {peer.name} is {peer.last_out_sequence}.")
    if after > peer.acked_sequence:
        apply.acknowledge(peer, after)  # commits
        peer = peers.get(peer_name, lock=True)
    if after < peer.last_out_sequence:
        data = outbound.kept_bundle(peer, after + 1)
        if data is None:
            acked = peer.acked_sequence
            db.session.rollback()
            raise Refused(410, f"Bundle {after + 1} was acknowledged earlier (bundles up to "
                               f"{acked} are), so it is no longer kept: {peer.name} says its "
                               f"last applied bundle is {after}, behind what it "
                               f"acknowledged ({acked}). Restore its federation state, or "
                               "ask for bundles to be sent again by file.")
        served = Served(after + 1, data, *_counts(data))
    else:
        made = outbound.next_bundle(peer)  # commits (or rolls back when there is none)
        if made is None:
            return None
        exported, data = made
        served = Served(exported.sequence, data, exported.lessons, exported.revocations,
                        exported.returns)
        peer = peers.get(peer_name)
    audit.record("federation_bundle_sent", actor=None, subject=peer.name,
                 comment=f"bundle {served.sequence} served online to {peer.name}: "
                         f"{served.lessons} lesson(s), {served.revocations} revocation(s), "
                         f"{served.returns} return(s)")
    db.session.commit()
    return served


# --- the client side -------------------------------------------------------------------
@dataclass(frozen=True)
class Fetched:
    """A feed's answer: 200 with the bundle in ``path``, or 204 (nothing new)."""

    status: int
    sequence: int | None = None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A signature covers one path: a redirect is reported, not followed."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def feed_url(base: str, after: int) -> tuple[str, str]:
    """(URL, signed target: path and query) of the feed at ``base`` after ``after``."""
    parts = urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise FederationError(f"{base!r} is not an http(s) address.")
    target = f"{parts.path.rstrip('/')}{FEED_PATH}?after={after}"
    return f"{parts.scheme}://{parts.netloc}{target}", target


def fetch(peer_name: str, base_url: str, after: int, path: Path) -> Fetched:
    """Ask peer ``peer_name``'s feed (at ``base_url``) for the bundle after ``after``,
    signed as this instance; a bundle is written to ``path``. FederationError with the
    peer's own message for any other answer, or when it cannot be reached."""
    url, target = feed_url(base_url, after)
    request = urllib.request.Request(url, method="GET", headers={
        **signed_headers("GET", target, peer_name), "Accept": "application/zip"})
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=TIMEOUT_SECONDS) as response:
            status = response.status
            if status == 204:
                return Fetched(204)
            if status != 200:
                raise FederationError(f"{peer_name} answered {status} {response.reason}.")
            length = response.headers.get("Content-Length")
            if length and length.isdigit() and int(length) > RESPONSE_MAX:
                raise FederationError(f"{peer_name} sent {int(length):,} bytes, more than "
                                      "any bundle may be.")
            _save(response, path, peer_name)
            sequence = response.headers.get(SEQUENCE_HEADER, "")
            return Fetched(200, int(sequence) if sequence.isdigit() else None)
    except urllib.error.HTTPError as exc:
        raise FederationError(f"{peer_name} refused: {exc.code} {_problem(exc)}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise FederationError(f"{peer_name} could not be reached at {base_url}: "
                              f"{reason}") from None


def _save(response: Any, path: Path, peer_name: str) -> None:
    size = 0
    with open(path, "wb") as out:
        while chunk := response.read(CHUNK):
            size += len(chunk)
            if size > RESPONSE_MAX:
                raise FederationError(f"{peer_name} sent more than any bundle may be "
                                      f"({RESPONSE_MAX:,} bytes); stopped reading.")
            out.write(chunk)


def _problem(error: urllib.error.HTTPError) -> str:
    """The detail of the peer's problem document, or its reason phrase."""
    try:
        data = json.loads(error.read(PROBLEM_MAX).decode("utf-8", "replace"))
        detail = data.get("detail") if isinstance(data, dict) else None
    except (ValueError, OSError):
        detail = None
    text = str(detail or error.reason or "")
    return text[:1000]


def record_error(peer_name: str, message: str) -> None:
    """Remember the last failure on the peer (``flask federation peer list`` shows it)."""
    db.session.rollback()
    peer = peers.find(peer_name)
    if peer is not None:
        peer.last_error = message[:2000]
        db.session.commit()


def sync(peer_name: str, limit: int = SYNC_MAX) -> Iterator[Applied]:
    """Pull and apply ``peer_name``'s bundles from its feed until it has nothing new
    (or ``limit`` bundles were applied), yielding each one applied. Each request names
    the last bundle applied, which acknowledges it. FederationError, recorded as the
    peer's last error, on any refusal here or there."""
    peer = peers.get(peer_name)
    if not peer.url:
        raise FederationError(f"{peer.name} has no URL: register it with its address "
                              "(flask federation peer add ... --url https://...).")
    base, name = peer.url, peer.name
    with tempfile.TemporaryDirectory(prefix="muster-sync-") as folder:
        for _ in range(limit):
            peer = peers.get(name)
            after = peer.last_in_sequence
            db.session.rollback()  # hold nothing open while the peer answers
            path = Path(folder) / f"{name}-bundle-{after + 1}.zip"
            try:
                fetched = fetch(name, base, after, path)
            except FederationError as exc:
                record_error(name, f"sync: {exc}")
                raise
            if fetched.status == 204:
                return
            yield apply.import_bundle(path)  # refusals are audited and recorded there
            path.unlink(missing_ok=True)

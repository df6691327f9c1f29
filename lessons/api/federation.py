"""``/api/v1/federation/feed``: this instance's bundles for a peer, online. The caller
is another Muster instance signing its request with its key (``federation.online``),
not a user with a token; the bundle is the file ``flask federation export`` writes,
byte for byte."""

from __future__ import annotations

from flask import Response, request

from lessons.api import bp, check_query_names
from lessons.errors import NotFound, problem
from lessons.federation import online


def _target() -> str:
    """The path and query the caller signed, as this server received them."""
    query = request.query_string.decode("latin-1")
    return request.script_root + request.path + (f"?{query}" if query else "")


@bp.get("/federation/feed")
def federation_feed() -> Response:
    """The bundle after ``after`` for the signing peer (200), or nothing new (204)."""
    try:
        peer = online.authenticate(request.method, _target(), request.headers)
    except online.Refused as exc:
        if exc.status == 404:
            raise NotFound(str(exc)) from None
        return problem(exc.status, "Unauthorized", str(exc),
                       headers={"WWW-Authenticate": f'{online.SIGNATURE_HEADER} '
                                                    'realm="muster-federation"'})
    check_query_names()
    raw = request.args.get("after", "")
    if not raw.isascii() or not raw.isdigit() or int(raw) > online.AFTER_MAX:
        return problem(400, "Bad request", "after= must be the sequence number of the last "
                       f"bundle from this instance you applied: a whole number from 0 to "
                       f"{online.AFTER_MAX} (0 when you have applied none).")
    try:
        served = online.feed(peer.name, int(raw))
    except online.Refused as exc:
        title = {409: "Conflict", 410: "Gone"}.get(exc.status, "Refused")
        return problem(exc.status, title, str(exc))
    if served is None:
        return Response(status=204)
    return Response(served.body, mimetype="application/zip", headers={
        "Content-Disposition": f'attachment; filename="{peer.name}-bundle-'
                               f'{served.sequence}.zip"',
        online.SEQUENCE_HEADER: str(served.sequence)})

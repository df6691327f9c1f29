"""The admins' federation page, ``/admin/peers``: this instance's identity and key (to
give to partners), every peer with its bundles in and out and how far behind its
acknowledgements are, a form to register a peer and a confirmed removal.

On the admin blueprint, so its one admin check covers these routes too. Registering and
removing go through ``federation.peers``, which the command line uses as well: the same
checks, and the audit names the administrator.
"""

from __future__ import annotations

from datetime import timedelta

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from lessons.extensions import db
from lessons.federation import identity
from lessons.federation import peers as service
from lessons.federation.identity import FederationError
from lessons.forms.peers import NAME_MAX, PeerForm, RemovePeerForm
from lessons.views.admin import bp


def waited(span: timedelta | None) -> str:
    """A span as the page says it: "4 minutes", "3 hours", "2 days"."""
    if span is None:
        return ""
    seconds = max(0, int(span.total_seconds()))
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'' if count == 1 else 's'}"
    return "less than a minute"


def _this_instance() -> dict[str, str]:
    """Name, nation, public key and fingerprint, or what is missing (``problem``)."""
    try:
        name, nation = identity.instance()
    except FederationError as exc:
        return {"problem": str(exc)}
    try:
        key = identity.public_key()
    except FederationError as exc:
        return {"name": name, "nation": nation, "problem": str(exc)}
    return {"name": name, "nation": nation, "key": key,
            "fingerprint": identity.fingerprint(key)}


def _page(form: PeerForm, status: int):
    return render_template("admin/peers.html", form=form, me=_this_instance(),
                           statuses=service.statuses(), waited=waited), status


@bp.route("/peers", methods=["GET", "POST"])
def peers():
    """GET lists; POST registers a peer (refused: 422 with the form and the reason)."""
    form = PeerForm()
    if form.validate_on_submit():
        try:
            peer = service.add(form.name.data or "", form.nations.data or [],
                               form.public_key.data or "", form.url.data or None,
                               actor=current_user._get_current_object())
        except FederationError as exc:
            db.session.rollback()
            form.form_errors.append(str(exc))
        else:
            flash(f"Peer {peer.name} registered ({', '.join(peer.nations)}, key "
                  f"{identity.fingerprint(peer.public_key)}). Bundles from it are accepted "
                  "from now on.", "success")
            return redirect(url_for("admin.peers"))
    return _page(form, 422 if form.is_submitted() else 200)


@bp.route("/peers/remove", methods=["GET", "POST"])
def peer_remove():
    """GET ``?name=`` asks for confirmation; the page's form POSTs here to remove."""
    form = RemovePeerForm()
    if request.method == "POST":
        if not form.validate_on_submit():
            abort(400, "The form was incomplete or expired; reload the page and try again.")
        name = form.name.data or ""
    else:
        name = request.args.get("name", "").strip()
        if not name or len(name) > NAME_MAX:
            abort(400, "Name the peer to remove: /admin/peers/remove?name=NAME.")
    peer = service.find(name)
    if peer is None:
        abort(404, f"No peer named {name!r}.")
    if request.method == "GET":
        form.name.data = peer.name
        return render_template("admin/peers_confirm.html", form=form,
                               status=service.status(peer))
    name = peer.name
    try:
        service.remove(name, actor=current_user._get_current_object())
    except FederationError as exc:  # removed by another request meanwhile
        abort(404, str(exc))
    flash(f"Peer {name} removed. Lessons received from it stay, read-only.", "success")
    return redirect(url_for("admin.peers"))

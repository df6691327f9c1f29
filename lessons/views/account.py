"""The user's account page: password change, personal API tokens (create, list,
revoke) and, on a page of their own, watched searches (list, rename, delete)."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, url_for
from flask_login import current_user

from lessons import sessions
from lessons.errors import ValidationFailed
from lessons.forms.account import PasswordForm, RevokeForm, TokenForm
from lessons.forms.watches import DeleteWatchForm, WatchForm
from lessons.services import logins, tokens, users, watches
from lessons.views.helpers import apply_errors

bp = Blueprint("account", __name__, url_prefix="/account")


def _page(form: TokenForm | None = None, *, secret: str = "", status: int = 200,
          password_form: PasswordForm | None = None, headers: dict | None = None):
    return render_template(
        "account/index.html", form=form or TokenForm(formdata=None), secret=secret,
        tokens=tokens.list_tokens(current_user), revoke_form=RevokeForm(),
        password_form=password_form or PasswordForm(formdata=None)), status, headers or {}


@bp.get("")
def index():
    return _page()


@bp.post("/password")
def change_password():
    form = PasswordForm()
    if not form.validate_on_submit():
        return _page(password_form=form, status=422)
    user = current_user._get_current_object()
    outcome = logins.confirm_password(user, form.current_password.data)
    if outcome.wait:
        form.current_password.errors = [
            f"Too many wrong passwords for this account. Wait {outcome.wait} seconds."
            if not outcome.address_wait else
            f"Too many attempts from your address. Wait {outcome.wait} seconds."]
        return _page(password_form=form, status=429,
                     headers={"Retry-After": str(outcome.wait)})
    if outcome.user is None:
        form.current_password.errors = [outcome.error]
        return _page(password_form=form, status=422)
    try:
        users.change_password(user, form.new_password.data)
    except ValidationFailed as exc:
        apply_errors(form, exc.errors)
        return _page(password_form=form, status=422)
    # Every session of the user ended with the change; this one starts afresh.
    sessions.start(user)
    flash("Password changed. You are logged out everywhere else.", "success")
    return redirect(url_for("account.index"))


@bp.post("/tokens")
def create_token():
    form = TokenForm()
    if form.validate_on_submit():
        try:
            _token, secret = tokens.create_token(current_user, form.name.data or "")
        except ValidationFailed as exc:
            apply_errors(form, exc.errors)
        else:
            # Shown once, in this response only; it is not stored and never shown again.
            return _page(secret=secret, status=201)
    return _page(form, status=422)


@bp.post("/tokens/<int:token_id>/revoke")
def revoke_token(token_id: int):
    if not RevokeForm().validate_on_submit():
        return _page(status=400)
    token = tokens.revoke_token(current_user, token_id)
    flash(f"Token \u201c{token.name}\u201d revoked: it no longer works.", "success")
    return redirect(url_for("account.index"))


# --- watched searches ---------------------------------------------------------------------------
def _watches_page(status: int = 200, errors: dict[str, list[str]] | None = None,
                  typed: dict[str, str] | None = None):
    return render_template(
        "account/watches.html", watches=watches.list_watches(current_user),
        search_path=watches.search_path, rename_form=WatchForm(formdata=None),
        delete_form=DeleteWatchForm(), errors=errors or {}, typed=typed or {}), status


@bp.get("/watches")
def watch_list():
    return _watches_page()


@bp.post("/watches/<public_id>/rename")
def rename_watch(public_id: str):
    watch = watches.get_watch(current_user, public_id)  # 404 before reading the form
    form = WatchForm()
    if form.validate_on_submit():
        try:
            watches.rename_watch(current_user, watch.public_id, form.name.data or "")
        except ValidationFailed as exc:
            form.name.errors = [*form.name.errors, *exc.errors.values()]
        else:
            flash(f"Watch renamed \u201c{watch.name}\u201d.", "success")
            return redirect(url_for("account.watch_list"))
    return _watches_page(422, {watch.public_id: list(form.name.errors)},
                         {watch.public_id: (form.name.data or "")[:200]})


@bp.post("/watches/<public_id>/delete")
def delete_watch(public_id: str):
    watches.get_watch(current_user, public_id)  # 404 before reading the form
    if not DeleteWatchForm().validate_on_submit():
        return _watches_page(400)
    name = watches.delete_watch(current_user, public_id)
    flash(f"You no longer watch \u201c{name}\u201d.", "success")
    return redirect(url_for("account.watch_list"))

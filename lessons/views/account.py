"""The user's account page: personal API tokens (create, list, revoke)."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, url_for
from flask_login import current_user

from lessons.errors import ValidationFailed
from lessons.forms.account import RevokeForm, TokenForm
from lessons.services import tokens
from lessons.views.helpers import apply_errors

bp = Blueprint("account", __name__, url_prefix="/account")


def _page(form: TokenForm, *, secret: str = "", status: int = 200):
    return render_template("account/index.html", form=form, secret=secret,
                           tokens=tokens.list_tokens(current_user),
                           revoke_form=RevokeForm()), status


@bp.get("")
def index():
    return _page(TokenForm(formdata=None))


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
            return _page(TokenForm(formdata=None), secret=secret, status=201)
    return _page(form, status=422)


@bp.post("/tokens/<int:token_id>/revoke")
def revoke_token(token_id: int):
    if not RevokeForm().validate_on_submit():
        return _page(TokenForm(formdata=None), status=400)
    token = tokens.revoke_token(current_user, token_id)
    flash(f"Token \u201c{token.name}\u201d revoked: it no longer works.", "success")
    return redirect(url_for("account.index"))

"""Log in and out."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user

from lessons import sessions
from lessons.forms.auth import LoginForm, LogoutForm
from lessons.services import logins
from lessons.views.helpers import is_safe_next

bp = Blueprint("auth", __name__)


@bp.route("/login", methods=["GET", "POST"])
def login():
    if current_user.is_authenticated:
        return redirect(url_for("main.index"))
    form = LoginForm(next=request.args.get("next", ""))
    if not form.validate_on_submit():
        status = 422 if form.is_submitted() else 200
        return render_template("auth/login.html", form=form), status
    outcome = logins.log_in(form.username.data, form.password.data)
    if outcome.user is not None:
        sessions.start(outcome.user)
        target = form.next.data
        return redirect(target if is_safe_next(target) else url_for("main.index"))
    if outcome.address_wait:
        return render_template("errors/error.html", status=429, title="Too many log-ins",
                               message="Too many log-in attempts from your address; wait "
                                       f"{outcome.wait} seconds and try again."), 429, {
            "Retry-After": str(outcome.wait)}
    if outcome.wait:
        return locked(form, outcome.wait)
    form.password.errors = [outcome.error]
    return render_template("auth/login.html", form=form), 401


def locked(form, wait: int):
    """The answer for an account that must wait, the same whether it exists or not."""
    return render_template("auth/login.html", form=form, wait=wait), 429, {
        "Retry-After": str(wait)}


@bp.route("/logout", methods=["GET", "POST"])
def logout():
    """GET asks for confirmation; only a POST with a CSRF token logs out."""
    form = LogoutForm()
    if request.method == "POST":
        if not form.validate_on_submit():
            return render_template("auth/logout.html", form=form), 400
        sessions.end()
        flash("You are logged out.", "info")
        return redirect(url_for("auth.login"))
    return render_template("auth/logout.html", form=form)

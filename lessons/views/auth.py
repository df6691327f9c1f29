"""Log in and out."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_user, logout_user

from lessons.forms.auth import LoginForm, LogoutForm
from lessons.services.users import authenticate
from lessons.views.helpers import is_safe_next

bp = Blueprint("auth", __name__)


@bp.route("/login", methods=["GET", "POST"])
def login():
    if current_user.is_authenticated:
        return redirect(url_for("main.index"))
    form = LoginForm(next=request.args.get("next", ""))
    if form.validate_on_submit():
        user = authenticate(form.username.data, form.password.data)
        if user is not None:
            login_user(user)
            target = form.next.data
            return redirect(target if is_safe_next(target) else url_for("main.index"))
        form.password.errors = ["Unknown username or wrong password."]
        return render_template("auth/login.html", form=form), 401
    status = 422 if form.is_submitted() else 200
    return render_template("auth/login.html", form=form), status


@bp.route("/logout", methods=["GET", "POST"])
def logout():
    """GET asks for confirmation; only a POST with a CSRF token logs out."""
    form = LogoutForm()
    if request.method == "POST":
        if not form.validate_on_submit():
            return render_template("auth/logout.html", form=form), 400
        logout_user()
        flash("You are logged out.", "info")
        return redirect(url_for("auth.login"))
    return render_template("auth/logout.html", form=form)

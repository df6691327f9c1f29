"""Notifications in the app: the list (mark one or all read; failed e-mails for
administrators), the header's unread count, and each user's settings."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask_login import current_user
from sqlalchemy.exc import SQLAlchemyError

from lessons.errors import ValidationFailed
from lessons.forms.notifications import MarkReadForm, ReadAllForm, SettingsForm, event_fields
from lessons.services import notifications
from lessons.views.helpers import apply_errors
from lessons.views.paging import page_arg

bp = Blueprint("notifications", __name__)


@bp.app_context_processor
def header_count() -> dict:
    """``unread_notifications()`` for base.html: asked only when a page draws the header."""

    def unread_notifications() -> int | None:
        if not current_user.is_authenticated:
            return None
        try:
            return notifications.unread_count(current_user)
        except SQLAlchemyError:  # an error page about the database still draws
            return None

    return {"unread_notifications": unread_notifications,
            "NOTIFICATION_COUNT_CAP": notifications.COUNT_CAP}


@bp.get("/notifications")
def index():
    pagination, items = notifications.list_for(current_user, page_arg())
    return render_template(
        "notifications/index.html", pagination=pagination, items=items,
        read_form=MarkReadForm(formdata=None), all_form=ReadAllForm(formdata=None),
        failures=notifications.failures(current_user))


@bp.post("/notifications/read")
def read():
    form = MarkReadForm()
    if not form.validate_on_submit():
        abort(400, "The form was incomplete or expired; reload the page and try again.")
    notifications.mark_read(current_user, form.notification.data)
    return redirect(url_for("notifications.index"))


@bp.post("/notifications/read-all")
def read_all():
    if not ReadAllForm().validate_on_submit():
        abort(400, "The form expired; reload the page and try again.")
    count = notifications.mark_all_read(current_user)
    flash(f"{count} notification{'s' if count != 1 else ''} marked as read.", "success")
    return redirect(url_for("notifications.index"))


def _settings_page(form: SettingsForm, status: int = 200):
    return render_template("notifications/settings.html", form=form,
                           events=event_fields(form)), status


@bp.route("/account/notifications", methods=["GET", "POST"])
def settings():
    user = current_user._get_current_object()
    if not SettingsForm().is_submitted():
        form = SettingsForm(formdata=None, data={**notifications.preferences(user),
                                                 "email": user.email or ""})
        return _settings_page(form)
    form = SettingsForm()
    if not form.validate():
        return _settings_page(form, 422)
    try:
        notifications.save_preferences(
            user, {event: form[event].data for event in notifications.EVENTS},
            form.email.data)
    except ValidationFailed as exc:
        apply_errors(form, exc.errors)
        return _settings_page(form, 422)
    flash("Notification settings saved.", "success")
    return redirect(url_for("notifications.settings"))

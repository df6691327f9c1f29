"""Admin pages: user accounts, the coalition glossary editor, the audit trail (read
only) and federation peers (``views.peers``). Thin: parse, call a service, render.

Every route is for admins only, checked once for the whole blueprint by the policy (the
services check again); anonymous users are sent to log in before that check runs.
"""

from __future__ import annotations

from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask_login import current_user

from lessons import policy, sessions
from lessons.errors import PreconditionFailed, ValidationFailed
from lessons.forms.audit import TrailForm
from lessons.forms.glossary import ConfirmForm, GlossaryGroupForm
from lessons.forms.users import (
    EditUserForm,
    NewUserForm,
    ResetPasswordForm,
    UserFilterForm,
)
from lessons.models import User
from lessons.search.glossary import MAX_GROUPS
from lessons.services import audit, nations, users
from lessons.services import glossary as service
from lessons.views.helpers import apply_errors
from lessons.views.paging import page_arg

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.before_request
def require_admin() -> None:
    policy.require_admin(current_user)


def _show_errors(form: GlossaryGroupForm, errors: dict[str, str]) -> None:
    """Service keys are ``terms``, ``terms.2``, ...: every one goes under its field."""
    for key, message in errors.items():
        apply_errors(form, {key.split(".", 1)[0]: message})


def _form_page(form: GlossaryGroupForm, group=None):
    status = 422 if form.is_submitted() else 200
    return render_template("admin/glossary_form.html", form=form, group=group), status


@bp.get("/glossary")
def glossary():
    listing = service.list_groups(current_user, request.args.get("q", "")[:200])
    return render_template("admin/glossary.html", listing=listing, max_groups=MAX_GROUPS)


@bp.route("/glossary/new", methods=["GET", "POST"])
def glossary_new():
    form = GlossaryGroupForm()
    if form.validate_on_submit():
        try:
            group = service.create_group(current_user, form.term_list(), form.note.data or "")
        except ValidationFailed as exc:
            _show_errors(form, exc.errors)
        else:
            flash(f"Glossary group added: {', '.join(group.terms)}. Searches use it from now on.",
                  "success")
            return redirect(url_for("admin.glossary"))
    return _form_page(form)


@bp.route("/glossary/<int:group_id>/edit", methods=["GET", "POST"])
def glossary_edit(group_id: int):
    group = service.get_group(current_user, group_id)
    form = GlossaryGroupForm(data={"terms": "\n".join(group.terms), "note": group.note})
    if form.validate_on_submit():
        try:
            group = service.update_group(current_user, group_id, form.term_list(),
                                         form.note.data or "")
        except ValidationFailed as exc:
            _show_errors(form, exc.errors)
        else:
            flash(f"Glossary group saved: {', '.join(group.terms)}.", "success")
            return redirect(url_for("admin.glossary"))
    return _form_page(form, group)


@bp.route("/glossary/<int:group_id>/delete", methods=["GET", "POST"])
def glossary_delete(group_id: int):
    """GET asks for confirmation; the page's form POSTs here to delete."""
    group = service.get_group(current_user, group_id)
    form = ConfirmForm()
    if request.method == "POST":
        if not form.validate_on_submit():
            abort(400, "The form was incomplete or expired; reload the page and try again.")
        terms = ", ".join(group.terms)
        service.delete_group(current_user, group_id)
        flash(f"Glossary group deleted: {terms}.", "success")
        return redirect(url_for("admin.glossary"))
    return render_template("admin/glossary_confirm.html", form=form, group=group)


@bp.route("/glossary/reset", methods=["GET", "POST"])
def glossary_reset():
    """GET asks for confirmation; the page's form POSTs here to reset."""
    form = ConfirmForm()
    if request.method == "POST":
        if not form.validate_on_submit():
            abort(400, "The form was incomplete or expired; reload the page and try again.")
        loaded = service.reset_to_default(current_user)
        flash(f"The glossary is back to the shipped default ({loaded} groups).", "success")
        return redirect(url_for("admin.glossary"))
    listing = service.list_groups(current_user)
    return render_template("admin/glossary_confirm.html", form=form, group=None,
                           listing=listing)


# --- the audit trail: read only; no route here or anywhere edits or deletes a record -------
def _trail_form() -> TrailForm:
    form = TrailForm(request.args, audit.known_actions(),
                     [nation.code for nation in nations.all_nations()])
    form.validate()
    return form


@bp.get("/audit")
def audit_trail():
    """Newest first, filtered by the GET form; bad filters answer 422 with the form."""
    form = _trail_form()
    if form.errors:
        return render_template("admin/audit.html", form=form, trail=None, args={}), 422
    flt = form.trail_filter()
    trail = audit.trail(current_user, flt, page=page_arg())
    return render_template("admin/audit.html", form=form, trail=trail,
                           args=flt.query_args())


@bp.get("/audit.csv")
def audit_csv():
    """The filtered trail as a streamed CSV download (itself audited as an export)."""
    form = _trail_form()
    if form.errors:
        abort(422, form.messages())
    rows = audit.trail_csv(current_user, form.trail_filter())
    return Response(stream_with_context(rows), mimetype="text/csv", headers={
        "Content-Disposition": 'attachment; filename="audit-trail.csv"'})


# --- user accounts -----------------------------------------------------------------------------
def _nation_names() -> list[tuple[str, str]]:
    return [(nation.code, nation.name) for nation in nations.all_nations()]


@bp.get("/users")
def users_list():
    """Users by nation then username, filtered by the GET form; bad filters answer 422."""
    form = UserFilterForm(request.args, [code for code, _name in _nation_names()])
    if not form.validate():
        return render_template("admin/users.html", form=form, listing=None, args={}), 422
    flt = users.UserFilter(q=(form.q.data or "").strip(), nation=form.nation.data or "",
                           role=form.role.data or "", active=form.active.data or "")
    listing = users.user_page(current_user, flt, page=page_arg())
    return render_template("admin/users.html", form=form, listing=listing,
                           args=flt.query_args())


@bp.route("/users/new", methods=["GET", "POST"])
def user_new():
    form = NewUserForm(_nation_names())
    if form.validate_on_submit():
        try:
            user = users.add_user(
                current_user, username=form.username.data or "", nation=form.nation.data,
                roles=form.roles.data or [], password=form.password.data or "",
                display_name=form.display_name.data or "", unit=form.unit.data or "")
        except ValidationFailed as exc:
            apply_errors(form, exc.errors)
        else:
            flash(f"User {user.username} created. Give them their password by a safe way.",
                  "success")
            return redirect(url_for("admin.users_list"))
    status = 422 if form.is_submitted() else 200
    return render_template("admin/users_new.html", form=form), status


def _user_values(user: User) -> dict:
    """The edit form's fields as the account holds them."""
    return {"display_name": user.display_name, "unit": user.unit, "nation": user.nation_code,
            "roles": sorted(user.roles), "active": user.active, "email": user.email or ""}


@bp.route("/users/<int:user_id>/edit", methods=["GET", "POST"])
def user_edit(user_id: int):
    """Every field of the form is sent each time (the service compares): a change of
    one field is not mistaken for a change of the others. The form carries the version
    of the account it was loaded at, and a save made on an older one is refused (409)
    with what is saved now beside what was typed."""
    user = users.get_user(current_user, user_id)
    form = EditUserForm(_nation_names(),
                        data={**_user_values(user), "version": str(user.version)})
    expected = form.posted_version() if form.is_submitted() else None
    if form.validate_on_submit():
        me = current_user._get_current_object()
        myself = user.id == me.id
        try:
            changed = users.update_user(
                me, user_id, display_name=form.display_name.data or "",
                unit=form.unit.data or "", nation=form.nation.data,
                roles=form.roles.data or [], active=bool(form.active.data),
                email=form.email.data or "", expected_version=expected)
        except ValidationFailed as exc:
            apply_errors(form, exc.errors)
        except PreconditionFailed:
            return _user_conflict_page(user_id, form)
        else:
            if not changed:
                flash(f"Nothing changed for {user.username}.", "info")
            else:
                flash(f"User {user.username} saved ({', '.join(changed)}).", "success")
            if myself and {"roles", "nation"} & set(changed):
                # Their own sessions ended with the change; this one starts afresh.
                sessions.start(me)
                if not policy.can_admin(me):
                    return redirect(url_for("main.index"))
            return redirect(url_for("admin.users_list"))
    status = 422 if form.is_submitted() else 200
    return render_template("admin/users_edit.html", form=form, user=user), status


def _user_conflict_page(user_id: int, form: EditUserForm):
    """Someone changed the account after this form was loaded: show what is saved now
    where it differs from what was typed; the form keeps what was typed, now on the newer
    version, so saving again is a deliberate choice. Nothing was stored."""
    user = users.get_user(current_user, user_id)
    saved = _user_values(user)
    typed = {"display_name": (form.display_name.data or "").strip(),
             "unit": (form.unit.data or "").strip(), "nation": form.nation.data,
             "roles": sorted(form.roles.data or []), "active": bool(form.active.data),
             "email": (form.email.data or "").strip()}
    shown = {"roles": lambda v: ", ".join(v) or "no roles",
             "active": lambda v: "yes" if v else "no", "email": lambda v: v or "none"}
    differing = [(form[key].label.text, shown.get(key, str)(saved[key]))
                 for key in typed if typed[key] != saved[key]]
    form.version.data = str(user.version)
    return render_template("admin/users_edit.html", form=form, user=user,
                           conflict=True, differing=differing), 409


@bp.route("/users/<int:user_id>/password", methods=["GET", "POST"])
def user_password(user_id: int):
    user = users.get_user(current_user, user_id)
    form = ResetPasswordForm()
    if form.validate_on_submit():
        try:
            users.admin_reset_password(current_user, user_id, form.password.data or "")
        except ValidationFailed as exc:
            apply_errors(form, exc.errors)
        else:
            flash(f"Password of {user.username} reset; they are logged out everywhere. "
                  "Give them the new one by a safe way.", "success")
            return redirect(url_for("admin.users_list"))
    status = 422 if form.is_submitted() else 200
    return render_template("admin/users_password.html", form=form, user=user), status


# The federation peers page lives in its own module on this blueprint (and its admin check).
from lessons.views import peers as _peers  # noqa: E402,F401

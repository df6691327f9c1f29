"""Trends at /dashboard: figures from ``services.trends``, charts from ``lessons.charts``.

A GET form in the URL filters every figure; a value that is not allowed is left out
with a message on the page (200, never an error), so a shared link always opens.
"""

from __future__ import annotations

from flask import Blueprint, render_template, request
from flask_login import current_user

from lessons import charts
from lessons.rules import DOMAIN_LABELS, DOMAINS, KIND_LABELS, STATUS_LABELS
from lessons.services import nations as nation_service
from lessons.services import trends as trend_service

bp = Blueprint("dashboard", __name__, url_prefix="/dashboard")


@bp.get("")
def index():
    flt, problems = trend_service.parse_filter(request.args)
    found = trend_service.trends(current_user, flt)
    return render_template(
        "dashboard/index.html", trends=found, flt=flt, problems=problems,
        charts=charts.dashboard(found), nations=nation_service.all_nations(),
        domains=DOMAINS, domain_labels=DOMAIN_LABELS, status_labels=STATUS_LABELS,
        kind_labels=KIND_LABELS, raw=request.args)

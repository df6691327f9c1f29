"""``/api/docs``: the OpenAPI document as a readable page (server-rendered, no script,
no third-party assets; the JSON itself is at ``/api/v1/openapi.json``)."""

from __future__ import annotations

from flask import Blueprint, render_template

from lessons.api.openapi import document

bp = Blueprint("api_docs", __name__, url_prefix="/api/docs")


@bp.get("")
def index():
    doc = document()
    operations = [(path, method, op) for path, methods in doc["paths"].items()
                  for method, op in methods.items()]
    return render_template("api/docs.html", doc=doc, operations=operations,
                           schemas=doc["components"]["schemas"])

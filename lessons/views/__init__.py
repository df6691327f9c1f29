"""Blueprints, one per area. Every route requires login unless listed in PUBLIC_ENDPOINTS."""

from __future__ import annotations

from flask import Flask, request
from flask_login import current_user

from lessons.extensions import login_manager

# Endpoints reachable without logging in; everything else is refused server-side.
PUBLIC_ENDPOINTS = frozenset({"auth.login", "static", "api_docs.index", "health.health"})


def register_blueprints(app: Flask) -> None:
    from lessons.api import register_api
    from lessons.views import (
        aar,
        account,
        admin,
        auth,
        dashboard,
        exercises,
        files,
        lessons,
        main,
        notifications,
        reviews,
        search,
    )
    from lessons.views.health import bp as health_bp

    app.register_blueprint(auth.bp)
    app.register_blueprint(main.bp)
    app.register_blueprint(aar.bp)
    app.register_blueprint(lessons.bp)
    app.register_blueprint(files.bp)
    app.register_blueprint(search.bp)
    app.register_blueprint(exercises.bp)
    app.register_blueprint(reviews.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(account.bp)
    app.register_blueprint(notifications.bp)
    app.register_blueprint(dashboard.bp)
    app.register_blueprint(health_bp)
    register_api(app)

    @app.before_request
    def require_login():
        if request.endpoint in PUBLIC_ENDPOINTS or request.endpoint is None:
            return None
        if request.blueprint == "api":
            return None  # bearer tokens only: the API authenticates its own requests
        if not current_user.is_authenticated:
            return login_manager.unauthorized()
        return None

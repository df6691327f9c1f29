"""``flask`` commands: users and demo data (search and exchange commands come with them)."""

from __future__ import annotations

import sys

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from sqlalchemy import func, select

from lessons.errors import ValidationFailed
from lessons.extensions import db
from lessons.models import User
from lessons.services import users as user_service

users_cli = AppGroup("users", help="Create and list user accounts.")
demo_cli = AppGroup("demo", help="Demo data for trying Muster out (refused in production).")


def _fail(errors: dict[str, str]) -> None:
    for key, message in errors.items():
        click.echo(f"error: {key}: {message}", err=True)
    sys.exit(2)


@users_cli.command("create")
@click.argument("username")
@click.option("--nation", required=True, help="ISO 3166-1 alpha-3 code, e.g. GBR.")
@click.option("--roles", default="contributor", show_default=True,
              help="Comma separated: contributor, analyst, planner, admin.")
@click.option("--display-name", default="", help="Name shown in the app.")
@click.option("--unit", default="", help="The user's unit or organisation.")
@click.option("--password-stdin", is_flag=True,
              help="Read the password from the first line of standard input.")
def create_user_command(username: str, nation: str, roles: str, display_name: str,
                        unit: str, password_stdin: bool) -> None:
    """Create USERNAME. Without --password-stdin the password is prompted for, hidden."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        user = user_service.create_user(username, nation=nation, roles=roles.split(","),
                                        password=password, display_name=display_name,
                                        unit=unit)
    except ValidationFailed as exc:
        _fail(exc.errors)
    click.echo(f"created {user.username} ({user.nation_code}; {', '.join(sorted(user.roles))})")


@users_cli.command("list")
def list_users_command() -> None:
    """List users: username, nation, roles, active flag, unit."""
    rows = [(u.username, u.nation_code, ",".join(sorted(u.roles)) or "-",
             "active" if u.active else "inactive", u.unit or "-")
            for u in user_service.list_users()]
    header = ("USERNAME", "NATION", "ROLES", "STATE", "UNIT")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        click.echo("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


@demo_cli.command("load")
@click.option("--if-empty", is_flag=True, help="Do nothing when users already exist.")
def load_demo_command(if_empty: bool) -> None:
    """Load demo users (password `demo`) and lessons. Refused in production."""
    from lessons.demo import DEMO_PASSWORD, DEMO_USERS, load_demo

    if not current_app.config.get("DEMO_DATA_ALLOWED"):
        click.echo("error: demo data is refused in production (MUSTER_ENV=production).",
                   err=True)
        sys.exit(2)
    if if_empty and db.session.scalar(select(func.count()).select_from(User)):
        click.echo("Database already has users; demo data not loaded.")
    else:
        try:
            summary = load_demo()
        except ValidationFailed as exc:
            _fail(exc.errors)
        click.echo(f"Loaded {summary['users']} demo users and {summary['lessons']} lessons.")
    click.echo(f"\nDemo logins (password for all: {DEMO_PASSWORD}):")
    for username, nation, roles, _name, _unit in DEMO_USERS:
        click.echo(f"  {username:<16} {nation}  {', '.join(roles)}")


def register_cli(app: Flask) -> None:
    app.cli.add_command(users_cli)
    app.cli.add_command(demo_cli)

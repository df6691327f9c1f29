"""``flask notify send``: deliver the notification e-mails that are due (requests only
store them), once or in a loop beside the web server (``make serve``)."""

from __future__ import annotations

from time import sleep

import click
from flask.cli import AppGroup

from lessons.extensions import db

notify_cli = AppGroup("notify", help="Deliver notification e-mails.")


@notify_cli.command("send")
@click.option("--loop", is_flag=True, help="Keep running, looking every --every seconds.")
@click.option("--every", type=click.IntRange(1, 86400), default=None, metavar="SECONDS",
              help="Look for due e-mails every SECONDS (implies --loop; default 60).")
def send_command(loop: bool, every: int | None) -> None:
    """Check watched searches due (once a day each) for new lessons, then send due
    e-mails (immediate ones; each user's daily digest), retrying failures after their
    back-off. Sends nothing without MAIL_SERVER."""
    from flask import current_app

    from lessons.services import notifications, watches

    if not current_app.config.get("MAIL_SERVER"):
        click.echo("MAIL_SERVER is not set: notifications are shown in the app only.")
    interval = every or 60
    while True:
        watched = watches.check_due()  # at most once a day per watch, mail server or not
        report = notifications.deliver_due()
        db.session.remove()
        if watched:
            click.echo(f"{watched} watched search(es) with new lessons.")
        if report.sent or report.failed or report.skipped or not (loop or every):
            click.echo(f"{report.sent} e-mail(s) sent, {report.failed} failed, "
                       f"{report.skipped} skipped.")
        for error in report.errors:
            click.echo(f"failed: {error}", err=True)
        if not (loop or every):
            return
        sleep(interval)

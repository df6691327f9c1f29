"""Notification e-mails: ``flask notify send`` delivers to a real SMTP server (a small
sink this module starts on a free local port), one e-mail per immediate notification and
one per daily digest, retries after a failing server with back-off, and sends nothing
about a lesson the recipient may no longer see."""

from __future__ import annotations

import email
import socketserver
import threading
from collections.abc import Iterator
from datetime import timedelta
from email.message import Message

import pytest
from flask import Flask
from sqlalchemy import select, update

from lessons import create_app
from lessons.extensions import db
from lessons.models import Lesson, Notification, User
from lessons.models.base import utcnow
from tests.conftest import clear_data

BASE_URL = "https://muster.example"


# --- a local SMTP sink ------------------------------------------------------------------------
class _SMTPHandler(socketserver.StreamRequestHandler):
    """Just enough SMTP for smtplib: EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT."""

    def reply(self, text: str) -> None:
        self.wfile.write(text.encode() + b"\r\n")

    def handle(self) -> None:
        sink: SMTPSink = self.server.sink  # type: ignore[attr-defined]
        self.reply("220 sink ESMTP")
        sender, recipients = "", []
        while line := self.rfile.readline():
            command = line.decode("ascii", "replace").strip()
            verb = command.upper()
            if verb.startswith("EHLO"):
                self.reply("250-sink\r\n250 8BITMIME")
            elif verb.startswith("HELO") or verb == "NOOP":
                self.reply("250 sink")
            elif verb.startswith("MAIL FROM:"):
                sender, recipients = command[10:].strip(" <>"), []
                self.reply("250 OK")
            elif verb.startswith("RCPT TO:"):
                recipients.append(command[8:].strip(" <>"))
                self.reply("250 OK")
            elif verb == "DATA":
                self.reply("354 End data with <CR><LF>.<CR><LF>")
                body = []
                while (data := self.rfile.readline()) not in (b".\r\n", b""):
                    body.append(data[1:] if data.startswith(b"..") else data)
                sink.received.append((sender, recipients, email.message_from_bytes(
                    b"".join(body))))
                self.reply("250 OK queued")
            elif verb == "RSET":
                sender, recipients = "", []
                self.reply("250 OK")
            elif verb == "QUIT":
                self.reply("221 Bye")
                return
            else:
                self.reply("502 Not implemented")


class SMTPSink:
    def __init__(self) -> None:
        self.received: list[tuple[str, list[str], Message]] = []
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _SMTPHandler)
        self.server.daemon_threads = True
        self.server.sink = self  # type: ignore[attr-defined]
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    def to(self, address: str) -> list[Message]:
        return [message for _sender, rcpts, message in self.received if address in rcpts]


def closed_port() -> int:
    """A local port nothing listens on (the mail server is down)."""
    with socketserver.TCPServer(("127.0.0.1", 0), socketserver.BaseRequestHandler) as probe:
        return probe.server_address[1]


@pytest.fixture
def smtp() -> Iterator[SMTPSink]:
    sink = SMTPSink()
    yield sink
    sink.stop()


@pytest.fixture
def app(schema: None, database_url: str, tmp_path, smtp: SMTPSink) -> Iterator[Flask]:
    """The test app with e-mail on, sent to the sink."""
    app = create_app("testing", SQLALCHEMY_DATABASE_URI=database_url,
                     INDEX_DIR=str(tmp_path / "index"), MAIL_SERVER="127.0.0.1",
                     MAIL_PORT=str(smtp.port), MAIL_FROM="muster@example.org",
                     BASE_URL=BASE_URL, MAIL_TIMEOUT=3.0)
    yield app
    with app.app_context():
        clear_data()
        db.engine.dispose()


@pytest.fixture
def people(make_user, runner):
    make_user("gb.writer", "GBR", ("contributor",), display_name="Cpl Writer")
    make_user("gb.checker", "GBR", ("analyst",), display_name="Maj Checker")
    make_user("us.writer", "USA", ("contributor",))
    for name in ("gb.writer", "gb.checker", "us.writer"):
        result = runner.invoke(args=["users", "set-email", name, f"{name}@example.org"])
        assert result.exit_code == 0, result.output


def send(runner) -> str:
    result = runner.invoke(args=["notify", "send"])
    assert result.exit_code == 0, result.output
    return result.output


def states(app, username: str) -> list[tuple[str, str, int]]:
    with app.app_context():
        return [tuple(r) for r in db.session.execute(
            select(Notification.event, Notification.email_state, Notification.attempts)
            .join(User, User.id == Notification.recipient_id)
            .where(User.username == username).order_by(Notification.id))]


def body(message: Message) -> str:
    return message.get_payload(decode=True).decode()


# --- immediate --------------------------------------------------------------------------------
def test_a_validation_is_emailed_to_the_author_at_once(app, people, login_as, make_lesson,
                                                       runner, smtp):
    lesson = make_lesson("gb.writer", "submitted", title="Radios did not talk")
    response = login_as("gb.checker").post(f"/lessons/{lesson.public_id}/transition",
                                           data={"to": "validated"})
    assert response.status_code == 302
    assert smtp.received == []  # the request only stored it
    assert "e-mail(s) sent" in send(runner)
    [message] = smtp.to("gb.writer@example.org")
    assert message["From"] == "muster@example.org"
    assert "Radios did not talk" in message["Subject"]
    text = body(message)
    assert "Maj Checker validated your lesson \u201cRadios did not talk\u201d." in text
    assert f"{BASE_URL}/lessons/{lesson.public_id}" in text
    assert ("my_lesson_status", "sent", 1) in states(app, "gb.writer")
    assert "0 e-mail(s) sent" in send(runner)  # sent once
    assert len(smtp.to("gb.writer@example.org")) == 1


def test_without_an_address_or_a_server_nothing_is_emailed(app, make_user, people, login_as,
                                                           make_lesson, runner, smtp):
    make_user("gb.nomail", "GBR", ("contributor",))
    lesson = make_lesson("gb.nomail", "submitted", title="No address")
    login_as("gb.checker").post(f"/lessons/{lesson.public_id}/transition",
                                data={"to": "validated"})
    assert states(app, "gb.nomail") == [("my_lesson_status", "skipped", 0)]
    app.config["MAIL_SERVER"] = ""
    other = make_lesson("gb.writer", "submitted", title="No server")
    login_as("gb.checker").post(f"/lessons/{other.public_id}/transition",
                                data={"to": "validated"})
    assert states(app, "gb.writer") == [("my_lesson_status", "skipped", 0)]
    assert "MAIL_SERVER is not set" in send(runner)
    assert smtp.received == []


# --- digest -----------------------------------------------------------------------------------
def test_a_daily_digest_gathers_several_notifications_in_one_email(app, people, make_lesson,
                                                                   runner, smtp):
    """Submissions reach the nation's analysts as a digest by default."""
    for title in ("First lesson", "Second lesson", "Third lesson"):
        make_lesson("gb.writer", "submitted", title=title)
    assert [s[1] for s in states(app, "gb.checker")] == ["pending"] * 3
    assert "1 e-mail(s) sent" in send(runner)
    [digest] = smtp.to("gb.checker@example.org")
    assert digest["Subject"] == "Muster: 3 notifications"
    text = body(digest)
    for title in ("First lesson", "Second lesson", "Third lesson"):
        assert f"Cpl Writer submitted \u201c{title}\u201d for review." in text
    assert [s[1] for s in states(app, "gb.checker")] == ["sent"] * 3
    # Another one the same day waits for tomorrow's digest.
    make_lesson("gb.writer", "submitted", title="Fourth lesson")
    send(runner)
    assert len(smtp.to("gb.checker@example.org")) == 1
    with app.app_context():  # a day later
        db.session.execute(update(Notification).where(Notification.email_state == "sent")
                           .values(emailed_at=utcnow() - timedelta(hours=25)))
        db.session.commit()
    send(runner)
    second = smtp.to("gb.checker@example.org")[1]
    assert second["Subject"] == "Muster: 1 notification"
    assert "Fourth lesson" in body(second) and "First lesson" not in body(second)


# --- retries ----------------------------------------------------------------------------------
def test_a_failing_server_is_retried_after_a_back_off(app, people, login_as, make_lesson,
                                                      runner, smtp, make_user):
    make_user("gb.admin", "GBR", ("admin",))
    app.config["MAIL_PORT"] = str(closed_port())  # the mail server is down
    lesson = make_lesson("gb.writer", "submitted", title="Radios did not talk")
    login_as("gb.checker").post(f"/lessons/{lesson.public_id}/transition",
                                data={"to": "validated"})
    result = runner.invoke(args=["notify", "send"])
    assert "gb.writer@example.org: ConnectionRefusedError" in result.output
    assert states(app, "gb.writer") == [("my_lesson_status", "failed", 1)]
    with app.app_context():
        row = db.session.scalar(select(Notification).where(
            Notification.event == "my_lesson_status"))
        assert row.last_error and row.next_attempt_at > utcnow() + timedelta(seconds=30)
    # Administrators see the failure, without the lesson's title.
    page = login_as("gb.admin").get("/notifications").get_data(as_text=True)
    assert "gb.writer" in page and "Connection" in page and "Radios" not in page
    # Back-off not over: not tried again, even with the server back.
    app.config["MAIL_PORT"] = str(smtp.port)
    send(runner)
    assert states(app, "gb.writer") == [("my_lesson_status", "failed", 1)]
    assert smtp.to("gb.writer@example.org") == []
    with app.app_context():  # the back-off is over
        db.session.execute(update(Notification).values(
            next_attempt_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    send(runner)
    assert states(app, "gb.writer") == [("my_lesson_status", "sent", 2)]
    assert len(smtp.to("gb.writer@example.org")) == 1


def test_it_gives_up_after_the_most_attempts(app, people, login_as, make_lesson, runner):
    app.config.update(MAIL_PORT=str(closed_port()), NOTIFY_MAX_ATTEMPTS=2,
                      NOTIFY_RETRY_SECONDS=0)
    lesson = make_lesson("gb.writer", "submitted", title="Radios")
    login_as("gb.checker").post(f"/lessons/{lesson.public_id}/transition",
                                data={"to": "validated"})
    for _ in range(4):
        send(runner)
    assert states(app, "gb.writer") == [("my_lesson_status", "failed", 2)]
    with app.app_context():
        assert db.session.scalar(select(Notification.next_attempt_at)) is None


# --- the policy at delivery -------------------------------------------------------------------
def test_a_lesson_hidden_before_delivery_is_not_emailed(app, people, login_as, make_lesson,
                                                        runner, smtp):
    """The US author hears of a link from a GBR lesson released to USA; the GBR lesson's
    REL TO is narrowed before the e-mail goes: no e-mail, no entry in the app."""
    secret = make_lesson("gb.writer", "validated", analyst="gb.checker",
                         title="Secret sauce", releasable_to=["USA"])
    theirs = make_lesson("us.writer", "submitted", title="US lesson", releasable_to=["GBR"])
    response = login_as("gb.checker").post(f"/lessons/{secret.public_id}/links",
                                           data={"other": theirs.public_id})
    assert response.status_code == 302
    with app.app_context():
        db.session.execute(update(Notification).values(email_mode="immediate"))
        lesson = db.session.scalar(select(Lesson).where(Lesson.public_id == secret.public_id))
        lesson.releasable_to = ["GBR"]
        db.session.commit()
    send(runner)
    assert smtp.to("us.writer@example.org") == []
    assert ("my_lesson_linked", "skipped", 0) in states(app, "us.writer")
    us = login_as("us.writer")
    assert "Secret sauce" not in us.get("/notifications").get_data(as_text=True)
    # Its author, who still sees it, is told as usual.
    assert "Secret sauce" in body(smtp.to("gb.writer@example.org")[0])


def test_set_email_refuses_a_bad_address(people, runner):
    result = runner.invoke(args=["users", "set-email", "gb.writer", "not an address"])
    assert result.exit_code == 2 and "e-mail address" in result.output
    result = runner.invoke(args=["users", "set-email", "gb.writer"])
    assert result.exit_code == 0 and "e-mail none" in result.output


def test_every_keeps_sending_until_stopped(people, make_lesson, runner, smtp, monkeypatch):
    """``--every SECONDS`` sends what is due, sleeps, and looks again."""
    import lessons.notify_cli

    naps: list[float] = []

    def nap(seconds: float) -> None:
        naps.append(seconds)
        if len(naps) == 1:
            make_lesson("gb.writer", "submitted", title="Later")
            return
        raise KeyboardInterrupt  # the operator stops it

    monkeypatch.setattr(lessons.notify_cli, "sleep", nap)
    result = runner.invoke(args=["notify", "send", "--every", "5"])
    assert naps == [5, 5]
    assert len(smtp.to("gb.checker@example.org")) == 1  # of the lesson submitted meanwhile
    assert runner.invoke(args=["notify", "send", "--every", "0"]).exit_code == 2
    assert result.exit_code in (0, 1)


def test_a_recipient_moved_to_another_nation_is_not_emailed(app, people, login_as,
                                                            make_lesson, runner, smtp):
    secret = make_lesson("gb.writer", "validated", analyst="gb.checker",
                         title="Secret sauce", releasable_to=["USA"])
    theirs = make_lesson("us.writer", "submitted", title="US lesson", releasable_to=["GBR"])
    assert login_as("gb.checker").post(f"/lessons/{secret.public_id}/links",
                                       data={"other": theirs.public_id}).status_code == 302
    with app.app_context():
        db.session.execute(update(Notification).values(email_mode="immediate"))
        db.session.execute(update(User).where(User.username == "us.writer")
                           .values(nation_code="FRA"))
        db.session.commit()
    send(runner)
    assert smtp.to("us.writer@example.org") == []
    assert ("my_lesson_linked", "skipped", 0) in states(app, "us.writer")

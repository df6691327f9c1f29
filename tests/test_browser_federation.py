"""Registering a federation peer in a real Chromium: an administrator opens
``/admin/peers`` from the admin navigation, sees this instance's public key, fills in
the form (CSRF on, as in production) and finds the peer in the table.

The shared ``live_server`` serves an instance with federation off, so this module serves
its own, named GBR-army with a key made by ``flask federation init``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask import Flask
from playwright.sync_api import Browser, expect

from lessons import create_app
from lessons.federation import identity
from tests.browser import TIMEOUT_MS, saved_on_failure
from tests.http_client import serving

pytestmark = pytest.mark.browser


@pytest.fixture
def federated_server(app: Flask, database_url: str, tmp_path: Path
                     ) -> Iterator[tuple[str, str]]:
    """The test app as instance GBR-army (with its key), CSRF on, served from a thread;
    yields its base URL and its public key."""
    served = create_app("testing", SQLALCHEMY_DATABASE_URI=database_url,
                        INDEX_DIR=app.config["INDEX_DIR"], FILES_DIR=app.config["FILES_DIR"],
                        FEDERATION_DIR=str(tmp_path / "fed"), INSTANCE_NAME="GBR-army",
                        INSTANCE_NATION="GBR", WTF_CSRF_ENABLED=True)
    result = served.test_cli_runner().invoke(args=["federation", "init"])
    assert result.exit_code == 0, result.output
    public_key = result.output.strip().splitlines()[-1]
    with serving(served) as address:  # disposes of the app's connections after
        yield f"http://{address}", public_key


def test_an_admin_registers_a_peer_and_sees_it_in_the_table(
        chromium: Browser, federated_server: tuple[str, str], make_user,
        tmp_path: Path) -> None:
    base_url, own_key = federated_server
    make_user("gb.admin", "GBR", ("admin",))
    key = identity.encode_public(Ed25519PrivateKey.generate().public_key())
    context = chromium.new_context(base_url=base_url)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    try:
        with saved_on_failure({"gb.admin": page}, tmp_path):
            page.goto("/login")
            page.get_by_label("Username").fill("gb.admin")
            page.get_by_label("Password").fill("demo")
            page.get_by_role("button", name="Log in").click()
            page.get_by_role("link", name="Federation").click()
            expect(page.get_by_role("heading", name="Federation peers")).to_be_visible()
            expect(page.get_by_test_id("public-key")).to_have_text(own_key)
            expect(page.get_by_text("No peer is registered.")).to_be_visible()

            # A wrong key first: the form says why and keeps what was typed.
            page.get_by_label("Instance name").fill("AUS-army")
            page.get_by_role("checkbox", name="AUS", exact=True).check()
            page.get_by_role("checkbox", name="NZL", exact=True).check()
            page.get_by_label("Public key").fill("not-a-key")
            page.get_by_role("button", name="Register the peer").click()
            expect(page.get_by_role("alert")).to_contain_text("The key is not base64")
            expect(page.get_by_label("Instance name")).to_have_value("AUS-army")

            page.get_by_label("Public key").fill(key)
            page.get_by_label("Address (optional)").fill("https://muster.aus.example")
            page.get_by_role("button", name="Register the peer").click()
            expect(page.get_by_text("Peer AUS-army registered")).to_be_visible()
            row = page.get_by_test_id("peers-table").locator("tr[data-peer='AUS-army']")
            expect(row).to_contain_text("AUS, NZL")
            expect(row).to_contain_text(identity.fingerprint(key))
            expect(row).to_contain_text("https://muster.aus.example")
            expect(row.get_by_test_id("out")).to_have_text("none yet")
    finally:
        context.close()

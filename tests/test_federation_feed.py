"""The online federation feed, ``GET /api/v1/federation/feed?after=SEQ``, and
``flask federation sync PEER``: the same signed bundles as the files, fetched by a peer
that signs its request with its instance key.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from lessons.extensions import db
from lessons.models import PeerBundle
from tests.test_federation import make_lesson, pair, ship  # noqa: F401  (fixture)


def kept(inst) -> list[int]:
    with inst.app.app_context():
        return list(db.session.scalars(select(PeerBundle.sequence).order_by(
            PeerBundle.sequence)))


def test_bundles_are_kept_byte_for_byte_until_acknowledged(pair, tmp_path: Path) -> None:
    a, b = pair
    make_lesson(a, title="Bilbyrest kept bundle", releasable_to=["AUS"])
    bundle = ship(a, b, tmp_path, 1, ack=False)
    with a.app.app_context():
        body = db.session.scalar(select(PeerBundle.body))
    assert body == bundle.read_bytes()
    assert kept(a) == [1]
    a.cli("federation", "import", str(tmp_path / "ack-1.zip"))
    assert kept(a) == []

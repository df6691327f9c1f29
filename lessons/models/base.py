"""Column helpers shared by the models."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

# No look-alike characters: public ids get read aloud and typed from printed packets.
_ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"
PUBLIC_ID_LENGTH = 10


def new_public_id() -> str:
    """A random URL-safe id; database ids never leave the server (they reveal counts)."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(PUBLIC_ID_LENGTH))


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)

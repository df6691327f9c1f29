"""This instance's federation identity: its name, its nation and its Ed25519 key pair.

The private key is a PEM file (PKCS #8) in ``FEDERATION_DIR``, readable by its owner
only and never printed or put in a bundle. Public keys travel as the base64 of their
32 raw bytes (44 characters): short enough to paste into ``flask federation peer add``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from flask import current_app

INSTANCE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
NATION = re.compile(r"^[A-Z]{3}$")
KEY_FILE = "ed25519-private.pem"


class FederationError(Exception):
    """A federation command or bundle refused, with a message for the operator."""


def check_settings(config: Mapping[str, Any]) -> None:
    """Refuse to start on a malformed instance name or nation (both may be empty: no
    federation), naming the setting."""
    name = config.get("INSTANCE_NAME") or ""
    nation = config.get("INSTANCE_NATION") or ""
    if name and not INSTANCE_NAME.match(name):
        raise RuntimeError("MUSTER_INSTANCE_NAME must be 1 to 64 letters, digits, dots, "
                           f"hyphens or underscores, starting with a letter or digit, not {name!r}")
    if nation and not NATION.match(nation):
        raise RuntimeError(f"MUSTER_INSTANCE_NATION must be a three-letter nation code such "
                           f"as GBR, not {nation!r}")
    if bool(name) != bool(nation):
        raise RuntimeError("Set both MUSTER_INSTANCE_NAME and MUSTER_INSTANCE_NATION, or "
                           "neither (federation off).")


def instance() -> tuple[str, str]:
    """(name, nation) of this instance, or FederationError when federation is not set up."""
    name = current_app.config.get("INSTANCE_NAME") or ""
    nation = current_app.config.get("INSTANCE_NATION") or ""
    if not name or not nation:
        raise FederationError("Federation is not set up: set MUSTER_INSTANCE_NAME (e.g. "
                              "GBR-army) and MUSTER_INSTANCE_NATION (e.g. GBR).")
    return name, nation


def key_path() -> Path:
    return Path(current_app.config["FEDERATION_DIR"]) / KEY_FILE


def encode_public(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


def decode_public(text: str) -> Ed25519PublicKey:
    """A public key as ``encode_public`` writes it; FederationError when it is not one."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise FederationError("The key is not base64 (it should be the 44 characters "
                              "`flask federation key` prints on the peer).") from None
    if len(raw) != 32:
        raise FederationError("The key is not an Ed25519 public key (32 bytes, 44 base64 "
                              "characters, as `flask federation key` prints it).")
    return Ed25519PublicKey.from_public_bytes(raw)


def fingerprint(public_key_text: str) -> str:
    """A short, stable name for a public key: SHA-256 of its raw bytes, first 32 hex."""
    raw = base64.b64decode(public_key_text)
    return "SHA256:" + hashlib.sha256(raw).hexdigest()[:32]


def init_key(*, force: bool = False) -> str:
    """Make this instance's key pair; return the public key. Refuses to replace an
    existing key unless ``force`` (peers holding the old key will refuse new bundles)."""
    instance()
    path = key_path()
    if path.exists() and not force:
        raise FederationError(f"A key already exists ({path}); --force replaces it, and "
                              "every peer must then be given the new public key.")
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    temporary = path.with_suffix(".new")
    temporary.unlink(missing_ok=True)
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    os.replace(temporary, path)
    return encode_public(key.public_key())


def private_key() -> Ed25519PrivateKey:
    path = key_path()
    if not path.exists():
        raise FederationError("This instance has no key yet: run `flask federation init`.")
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise FederationError(f"{path} does not hold an Ed25519 key.")
    return key


def public_key() -> str:
    return encode_public(private_key().public_key())


def sign(message: bytes) -> bytes:
    return private_key().sign(message)


def verify(public_key_text: str, signature: bytes, message: bytes) -> bool:
    try:
        decode_public(public_key_text).verify(signature, message)
    except (InvalidSignature, FederationError):
        return False
    return True

"""The signed bundle: one zip file holding ``manifest.json``, ``records.jsonl`` and
``signature``, so it can cross a guard that passes only files.

The signature is a detached Ed25519 signature over ``SIGNED_PREFIX``, the SHA-256 of the
manifest's bytes and the SHA-256 of the records' bytes; the manifest also names the
records' digest. Changing one byte of either part, or signing with another key, makes
``verify`` fail. Reading is bounded (sizes declared and read, names, JSON depth), so a
hostile file is refused with a reason, never unpacked at length.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lessons.federation import identity
from lessons.federation.identity import FederationError

FORMAT = "muster-federation-bundle"
FORMAT_VERSION = 1
SIGNED_PREFIX = b"muster-federation-bundle-1\n"
MANIFEST = "manifest.json"
RECORDS = "records.jsonl"
SIGNATURE = "signature"
PARTS = (MANIFEST, RECORDS, SIGNATURE)
MANIFEST_MAX = 64 * 1024
SIGNATURE_MAX = 1024
RECORDS_MAX = 512 * 1024 * 1024  # uncompressed; a bundle this large is split by age
BUNDLE_FILE_MAX = RECORDS_MAX + 1024 * 1024


@dataclass(frozen=True)
class Bundle:
    manifest: dict[str, Any]
    manifest_bytes: bytes
    records_bytes: bytes
    signature: bytes

    def records(self) -> list[dict[str, Any]]:
        """The records, one JSON object a line; FederationError naming a bad line."""
        from lessons.services.exchange import MAX_LINE_BYTES, loads_bounded

        out: list[dict[str, Any]] = []
        for number, line in enumerate(self.records_bytes.split(b"\n"), start=1):
            if not line.strip():
                continue
            if len(line) > MAX_LINE_BYTES:
                raise FederationError(f"Record {number} is longer than {MAX_LINE_BYTES:,} bytes.")
            try:
                value = loads_bounded(line.decode("utf-8"))
            except (UnicodeDecodeError, ValueError) as exc:
                raise FederationError(f"Record {number} is not JSON: {exc}") from None
            if not isinstance(value, dict):
                raise FederationError(f"Record {number} is not a JSON object.")
            out.append(value)
        return out


def signed_message(manifest_bytes: bytes, records_bytes: bytes) -> bytes:
    return (SIGNED_PREFIX + hashlib.sha256(manifest_bytes).digest()
            + hashlib.sha256(records_bytes).digest())


def records_bytes(records: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n"
                   for r in records).encode("utf-8")


def build(manifest: dict[str, Any], records: bytes) -> bytes:
    """Sign ``manifest`` and ``records`` and return the bundle's bytes (the file, or the
    online feed's answer: the same bytes). ``manifest`` gains the format and the
    records' digest."""
    manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, **manifest,
                "records_sha256": hashlib.sha256(records).hexdigest()}
    manifest_bytes = json.dumps(manifest, ensure_ascii=False, sort_keys=True,
                                indent=1).encode("utf-8")
    signature = identity.sign(signed_message(manifest_bytes, records))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(MANIFEST, manifest_bytes)
        archive.writestr(RECORDS, records)
        archive.writestr(SIGNATURE, base64.b64encode(signature) + b"\n")
    return buffer.getvalue()


def save(path: Path, data: bytes) -> None:
    """Write bundle bytes to ``path`` through a temporary file: a reader never sees
    half a bundle."""
    path = Path(path)
    temporary = path.with_name(path.name + ".partial")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def write(path: Path, manifest: dict[str, Any], records: bytes) -> None:
    """Sign and write a bundle to ``path``."""
    save(path, build(manifest, records))


def _read_part(archive: zipfile.ZipFile, name: str, limit: int) -> bytes:
    info = archive.getinfo(name)
    if info.file_size > limit:
        raise FederationError(f"The bundle's {name} is larger than {limit:,} bytes.")
    with archive.open(info) as part:
        data = part.read(limit + 1)
    if len(data) > limit:
        raise FederationError(f"The bundle's {name} is larger than {limit:,} bytes.")
    return data


def read(path: Path) -> Bundle:
    """Open a bundle without trusting it (``verify`` is the caller's next step)."""
    path = Path(path)
    try:
        if path.stat().st_size > BUNDLE_FILE_MAX:
            raise FederationError(f"{path.name} is larger than any bundle may be.")
        with zipfile.ZipFile(path) as archive:
            names = sorted(archive.namelist())
            if SIGNATURE not in names and sorted(names) == sorted([MANIFEST, RECORDS]):
                raise FederationError("The bundle is not signed (it has no signature).")
            if names != sorted(PARTS):
                raise FederationError(
                    f"Not a Muster bundle: it should hold exactly {', '.join(PARTS)}.")
            manifest_bytes = _read_part(archive, MANIFEST, MANIFEST_MAX)
            records = _read_part(archive, RECORDS, RECORDS_MAX)
            signature_text = _read_part(archive, SIGNATURE, SIGNATURE_MAX)
    except FileNotFoundError:
        raise FederationError(f"No such file: {path}") from None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError) as exc:
        raise FederationError(f"Not a Muster bundle (not a readable zip file: {exc}).") from None
    try:
        manifest = json.loads(manifest_bytes.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise FederationError("The bundle's manifest is not JSON.") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise FederationError("Not a Muster bundle (its manifest names another format).")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise FederationError(f"Bundle format version {manifest.get('format_version')!r} is "
                              f"not one this instance reads ({FORMAT_VERSION}).")
    try:
        signature = base64.b64decode(signature_text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise FederationError("The bundle's signature is not base64.") from None
    if not signature:
        raise FederationError("The bundle is not signed (its signature is empty).")
    return Bundle(manifest, manifest_bytes, records, signature)


def verify(bundle: Bundle, public_key: str) -> None:
    """FederationError unless ``bundle`` is intact and signed with ``public_key``."""
    digest = hashlib.sha256(bundle.records_bytes).hexdigest()
    if bundle.manifest.get("records_sha256") != digest or not identity.verify(
            public_key, bundle.signature,
            signed_message(bundle.manifest_bytes, bundle.records_bytes)):
        raise FederationError("The bundle's signature does not match its content and the "
                              "sender's registered key: it was altered after signing, or "
                              "signed with another key. Nothing was applied.")


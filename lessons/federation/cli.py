"""``flask federation``: this instance's key, its peers, and bundles out and in."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NoReturn

import click
from flask.cli import AppGroup

from lessons.federation import apply, identity, online, outbound, peers
from lessons.federation.identity import FederationError

federation_cli = AppGroup("federation", help="Exchange lessons with other Muster instances "
                                             "(signed bundle files).")
peer_cli = AppGroup("peer", help="The Muster instances this one exchanges lessons with.")
federation_cli.add_command(peer_cli)


def _fail(exc: FederationError) -> NoReturn:
    click.echo(f"error: {exc}", err=True)
    sys.exit(2)


@federation_cli.command("init")
@click.option("--force", is_flag=True, help="Replace an existing key: each peer then runs "
              "`flask federation peer key` with the new one. Best once every bundle "
              "written is acknowledged (those kept for the feed stay signed with the old "
              "key).")
def init_command(force: bool) -> None:
    """Make this instance's Ed25519 key pair; prints the public key for peers."""
    try:
        key = identity.init_key(force=force)
        name, nation = identity.instance()
    except FederationError as exc:
        _fail(exc)
    click.echo(f"{name} ({nation}) key made; private key at {identity.key_path()} "
               "(never share it). Public key, for peers to register:")
    click.echo(key)


@federation_cli.command("key")
def key_command() -> None:
    """Print this instance's public key (base64 of its 32 bytes)."""
    try:
        click.echo(identity.public_key())
    except FederationError as exc:
        _fail(exc)


@peer_cli.command("add")
@click.argument("name")
@click.option("--nation", "nations", multiple=True, required=True,
              help="A nation the peer serves (repeat for each), e.g. --nation AUS.")
@click.option("--key", required=True, help="The peer's public key (`flask federation key` "
                                           "on the peer).")
@click.option("--url", default=None, help="The peer's address, for `flask federation sync`.")
def peer_add_command(name: str, nations: tuple[str, ...], key: str, url: str | None) -> None:
    """Register peer NAME (its MUSTER_INSTANCE_NAME)."""
    try:
        peer = peers.add(name, list(nations), key, url)
    except FederationError as exc:
        _fail(exc)
    click.echo(f"added peer {peer.name} ({', '.join(peer.nations)}), key "
               f"{identity.fingerprint(peer.public_key)}")


@peer_cli.command("list")
def peer_list_command() -> None:
    """Every peer with its nations, key fingerprint and bundle sequence numbers."""
    rows = peers.all_peers()
    if not rows:
        click.echo("no peers")
    for peer in rows:
        click.echo(f"{peer.name}\t{','.join(peer.nations)}\t"
                   f"{identity.fingerprint(peer.public_key)}\t"
                   f"out {peer.last_out_sequence} (acknowledged {peer.acked_sequence})\t"
                   f"in {peer.last_in_sequence}\t{peer.url or '-'}"
                   + (f"\tlast error: {peer.last_error}" if peer.last_error else ""))


@peer_cli.command("key")
@click.argument("name")
@click.argument("key")
def peer_key_command(name: str, key: str) -> None:
    """Give peer NAME its new public KEY (after it ran `flask federation init --force`),
    keeping the bundle sequence numbers both sides count on."""
    try:
        peer = peers.set_key(name, key)
    except FederationError as exc:
        _fail(exc)
    click.echo(f"peer {peer.name} key is now {identity.fingerprint(peer.public_key)}")


@peer_cli.command("remove")
@click.argument("name")
def peer_remove_command(name: str) -> None:
    """Forget peer NAME (lessons received from it stay, read-only)."""
    try:
        peers.remove(name)
    except FederationError as exc:
        _fail(exc)
    click.echo(f"removed peer {name}")


@federation_cli.command("export")
@click.argument("peer")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def export_command(peer: str, file: Path) -> None:
    """Write the next signed bundle for PEER to FILE."""
    try:
        result = outbound.export(peer, file)
    except FederationError as exc:
        _fail(exc)
    click.echo(f"bundle {result.sequence} for {result.peer}: {result.lessons} lesson(s), "
               f"{result.revocations} revocation(s), {result.returns} outcome(s), request(s) "
               f"or decision(s) written to {file}")


@federation_cli.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--ack", "ack", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the signed acknowledgement for the sender to this file.")
def import_command(file: Path, ack: Path | None) -> None:
    """Verify and apply a bundle (or an acknowledgement) from a peer."""
    try:
        result = apply.import_bundle(file, ack)
    except FederationError as exc:
        _fail(exc)
    click.echo(result.summary())
    for note in result.notes:
        click.echo(note)
    if ack is not None and result.kind == "lessons":
        click.echo(f"acknowledgement written to {ack}")


@federation_cli.command("sync")
@click.argument("peer")
@click.option("--limit", type=click.IntRange(1, online.SYNC_MAX), default=online.SYNC_MAX,
              show_default=True, help="Apply at most this many bundles in this run.")
def sync_command(peer: str, limit: int) -> None:
    """Pull and apply PEER's new bundles from its online feed (the URL registered with
    `peer add --url`), signed with this instance's key; each request acknowledges the
    bundle applied before it."""
    applied = 0
    try:
        for result in online.sync(peer, limit):
            applied += 1
            click.echo(result.summary())
    except FederationError as exc:
        _fail(exc)
    if applied == limit:
        click.echo(f"{peer}: {applied} bundle(s) applied, the most one run applies; run "
                   "sync again for the rest.")
    else:
        click.echo(f"{peer}: {applied} bundle(s) applied; nothing more to fetch.")

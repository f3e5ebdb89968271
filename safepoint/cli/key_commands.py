"""Commands for encrypted stores: `keygen` (a new key) and `rekey` (re-encrypt the store under a new key)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from ..stores.keys import generate
from .app import JsonFlag, command, fail, open_repo, print_json, spinner


@command()
def keygen(
    output: Annotated[
        Path | None, typer.Option("-o", "--output", metavar="FILE", help="Write the key to FILE (mode 0600).")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help='Print {"key": KEY}, or with -o {"key_file": PATH} (never the key).')
    ] = False,
) -> None:
    """Make a new random AES-256 key (base64); use it as SAFEPOINT_KEY or in SAFEPOINT_KEY_FILE."""
    key = generate()
    if output is None:
        return print_json({"key": key}) if as_json else typer.echo(key)
    try:
        fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        fail(f"{output} exists; a key file is never overwritten (the store it opens would be lost)")
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    if as_json:
        return print_json({"key_file": str(output.absolute())})
    typer.echo(f"wrote a new key to {output}")


@command()
def rekey(
    ctx: typer.Context,
    new_key_file: Annotated[
        Path, typer.Option("--new-key-file", metavar="FILE", help="The new key (from `safepoint keygen -o FILE`).")
    ],
    as_json: JsonFlag = False,
) -> None:
    """Re-encrypt every value of the store (opened with SAFEPOINT_KEY / SAFEPOINT_KEY_FILE) under a new key.

    Crash-safe: interrupted, the store opens with the old and the new key together (SAFEPOINT_KEY_FILE=new,
    SAFEPOINT_OLD_KEY_FILE=old) and running it again finishes. Run it with no writer active.
    """
    repo = open_repo(ctx)
    with spinner("re-encrypting") as progress:
        counts = repo.rekey(new_key_file, progress=progress)
    if as_json:
        return print_json({**counts, "key_file": str(new_key_file.absolute())})
    typer.echo(
        f"re-encrypted {counts['rewritten']} values under the new key ({counts['already']} were already, "
        f"{counts['plain']} seq hints stay plaintext); open the store with {new_key_file} from now on"
    )

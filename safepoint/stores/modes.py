"""Permissions of the files and directories the local stores (directory, SQLite) create.

A store holds every state, step output and answer of its agents: by default only its owner may read it, files
0600 and directories 0700, whatever the process umask (a permissive umask 000 must not open it to everyone).
`mode=` asks for more (`0640` for a group that reads backups): that mode is the most a new file gets, minus
what the umask removes, as for any file a program creates; directories get the same bits plus `x` wherever
`r` is set. Existing files keep the modes they have.
"""

from __future__ import annotations

import os
from contextlib import suppress
from pathlib import Path

from ..errors import SafepointError

#: Files a local store creates: read and write for the owner only.
DEFAULT_MODE = 0o600


class InvalidMode(SafepointError, ValueError):
    """A `mode=` option that is not an octal permission mode the store can work with."""


def file_mode(value: int | str | None) -> int:
    """The file mode asked for (an int, or octal text such as `"0640"`), DEFAULT_MODE for None."""
    if value is None:
        return DEFAULT_MODE
    try:
        mode = value if isinstance(value, int) and not isinstance(value, bool) else int(str(value), 8)
    except ValueError:
        mode = -1
    if not 0 <= mode <= 0o777 or mode & 0o600 != 0o600:
        raise InvalidMode(
            f"store option mode={value!r} is not a usable file mode: give octal permission bits such as 0600 "
            "(the default) or 0640, with read and write for the owner"
        )
    return mode


def dir_mode(mode: int) -> int:
    """The directory mode that goes with file mode `mode`: the same bits, plus search (`x`) wherever `r` is."""
    return mode | (mode & 0o444) >> 2


def make_dirs(path: Path, mode: int) -> None:
    """`mkdir -p path` giving every directory it creates `mode` (Path.mkdir gives parents the umask default)."""
    if path.is_dir():
        return
    make_dirs(path.parent, mode)
    with suppress(FileExistsError):  # made by another process meanwhile
        os.mkdir(path, mode)

"""Where results go: checked before any work, so nothing of the user's is replaced or deleted by surprise.

:func:`check_output_dir` refuses an output folder below a regular file, an existing file of that name, and a
folder we cannot write to; :func:`check_output_file` refuses an existing folder where a file is to be written
(it was deleted before) and a file below a regular file. Both raise a :class:`UserError` naming the path.
"""

from __future__ import annotations

import os
from pathlib import Path

from runner.errors import UserError


def _nearest_existing(path: Path) -> Path:
    for parent in (path, *path.parents):
        if parent.exists() or parent.is_symlink():
            return parent
    return Path.cwd()


def _check_parent(path: Path, *, what: str) -> None:
    existing = _nearest_existing(path.parent)
    if not existing.is_dir():
        raise UserError(
            f"cannot create the {what}: {existing} is a file, not a folder",
            path=path,
            hint="choose an output path whose parent is a folder",
        )
    if existing != path.parent:
        raise UserError(
            f"the {what}'s parent folder does not exist", path=path.parent, hint="create it first"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(
            f"cannot write the {what}: no permission to write in {existing}",
            path=path,
            hint="choose a folder you can write to",
        )


def check_output_dir(path: str | Path, *, what: str = "output folder") -> Path:
    """Check that ``path`` can be used as an output folder (it may exist); returns it."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(
            f"the {what} exists and is a file, not a folder", path=path, hint="choose another output path"
        )
    if path.is_dir():
        if not os.access(path, os.W_OK | os.X_OK):
            raise UserError(
                f"cannot write in the {what} (no permission)", path=path, hint="choose another one"
            )
        return path
    _check_parent(path, what=what)
    return path


def check_output_file(path: str | Path, *, what: str = "output file") -> Path:
    """Check that a file can be written at ``path`` without deleting a folder of that name; returns it."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        raise UserError(
            f"a folder exists where the {what} is to be written; refusing to replace it",
            path=path,
            hint="move or rename that folder, or choose another output",
        )
    if not path.exists():
        _check_parent(path, what=what)
    return path

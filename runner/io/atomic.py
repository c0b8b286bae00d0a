"""Atomic file writes: write to a temporary sibling, then rename over the target."""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path


def temp_sibling(path: str | Path) -> Path:
    """A hidden, unique path in the same folder as ``path`` (same filesystem, so rename is atomic)."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write to; on success it replaces ``path``, on error it is removed.

    Works for files and for folders (zarr stores, unpacked packages).
    """
    path = Path(path)
    if not path.parent.exists():
        from runner.errors import UserError

        raise UserError("the output folder does not exist", path=path.parent, hint="create it first")
    from runner.safety import check_output_file

    if not path.is_dir():
        check_output_file(path)  # the folder is writable; nothing of the user's is in the way
    tmp = temp_sibling(path)
    try:
        yield tmp
        if path.is_dir() and not path.is_symlink() and not tmp.is_dir():
            check_output_file(path)  # a folder where a file goes: refused, never deleted
        if path.is_dir() and tmp.is_dir():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


@contextlib.contextmanager
def staged_dir(out: str | Path) -> Iterator[Path]:
    """Stage a batch of outputs in a temporary folder and move them into ``out`` only when all succeeded.

    ``out`` may exist (files in it with the same names are replaced) or not (it is created); its parent must
    exist. On any error nothing is moved and the staging folder is removed.
    """
    out = Path(out)
    if not out.parent.exists():
        from runner.errors import UserError

        raise UserError("the output's parent folder does not exist", path=out.parent, hint="create it first")
    if out.exists() and not out.is_dir():
        from runner.errors import UserError

        raise UserError("output exists and is not a folder", path=out)
    from runner.safety import check_output_dir, check_output_file

    check_output_dir(out)
    tmp = temp_sibling(out)
    tmp.mkdir()
    try:
        yield tmp
        if not out.exists():
            os.replace(tmp, out)
            return
        moves = [(src, out / src.relative_to(tmp)) for src in sorted(tmp.rglob("*")) if not src.is_dir()]
        for _, dst in moves:  # every conflict found before anything moves: all or nothing
            for parent in dst.relative_to(out).parents:
                if (out / parent).exists() and not (out / parent).is_dir():
                    check_output_dir(out / parent)
            if dst.exists():
                check_output_file(dst)
        for src, dst in moves:
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dst)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)

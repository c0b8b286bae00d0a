"""Zip archives from strangers: extraction with limits, and sha256 checks of the files we use.

A bioimage.io package is a zip archive written by someone else. Before anything in it is read we refuse
entries with absolute paths or ``..`` components, links, archives whose content would expand past a size
limit, and entries compressed more than :data:`MAX_RATIO` times (a zip bomb: 2 GiB of zeros fit in 2 MB).
Declared sizes are checked first, then the bytes actually written, so a lying header does not help. Every
file a description lists with a ``sha256`` is hashed before it is used.
"""

from __future__ import annotations

import hashlib
import os
import stat
import zipfile
from pathlib import Path, PurePosixPath

from runner.errors import UserError

DEFAULT_MAX_UNPACKED_BYTES = 8 * 1024**3
"""Largest total size a package may expand to (8 GiB); override with ``RUNNER_MAX_PACKAGE_BYTES``."""

MAX_ENTRIES = 10_000
MAX_RATIO = 200
"""Largest compression ratio of one entry (weights and images compress 1-10x; zeros 1000x)."""
RATIO_FLOOR = 16 * 1024**2
"""Entries expanding to less than this (16 MiB) are not ratio-checked: small files may compress well."""
_LIMIT_HINT = "set RUNNER_MAX_PACKAGE_BYTES to allow larger packages if you trust this one"
_CHUNK = 1 << 20


class IntegrityError(UserError):
    """A package file is missing or does not match its sha256: never fall back to another file silently."""


def max_unpacked_bytes() -> int:
    """The size limit in bytes: ``RUNNER_MAX_PACKAGE_BYTES``, else :data:`DEFAULT_MAX_UNPACKED_BYTES`."""
    value = os.environ.get("RUNNER_MAX_PACKAGE_BYTES")
    if not value:
        return DEFAULT_MAX_UNPACKED_BYTES
    try:
        return int(float(value))
    except ValueError:
        raise UserError(f"RUNNER_MAX_PACKAGE_BYTES must be a number of bytes, got {value!r}") from None


def _check_member(info: zipfile.ZipInfo, archive: Path) -> PurePosixPath:
    name = info.filename.replace("\\", "/")
    path = PurePosixPath(name)
    if name.startswith("/") or (len(name) > 1 and name[1] == ":") or path.is_absolute():
        raise UserError(
            f"zip entry {info.filename!r} has an absolute path; refusing to unpack it",
            path=archive,
            hint="a bioimage.io package must only hold relative paths",
        )
    if any(part == ".." for part in path.parts):
        raise UserError(
            f"zip entry {info.filename!r} points outside the package ('..'); refusing to unpack it",
            path=archive,
            hint="a bioimage.io package must only hold relative paths inside itself",
        )
    mode = info.external_attr >> 16
    if mode and stat.S_ISLNK(mode):
        raise UserError(
            f"zip entry {info.filename!r} is a symbolic link; refusing to unpack it", path=archive
        )
    return path


def safe_extract(archive: str | Path, dest: str | Path, *, max_bytes: int | None = None) -> Path:
    """Unpack a zip archive into ``dest`` after checking every entry.

    Parameters
    ----------
    archive : path of the ``.zip`` file.
    dest : folder to unpack into (created; should be empty).
    max_bytes : refuse archives expanding past this many bytes (default :func:`max_unpacked_bytes`).

    Returns
    -------
    Path
        ``dest``.

    Raises
    ------
    UserError
        Not a zip file, absolute or ``..`` entries, links, too many entries or too many bytes.
    """
    archive, dest = Path(archive), Path(dest)
    limit = max_unpacked_bytes() if max_bytes is None else int(max_bytes)
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise UserError(
            f"not a readable zip archive ({exc})", path=archive, hint="re-download the package"
        ) from None
    with zf:
        infos = zf.infolist()
        if len(infos) > MAX_ENTRIES:
            raise UserError(f"zip archive has {len(infos)} entries (limit {MAX_ENTRIES})", path=archive)
        members = [(info, _check_member(info, archive)) for info in infos]
        for info in infos:
            _check_ratio(info, archive)
        declared = sum(info.file_size for info in infos)
        if declared > limit:
            raise UserError(
                f"zip archive would expand to {declared} bytes, more than the limit of {limit} bytes",
                path=archive,
                hint=_LIMIT_HINT,
            )
        dest.mkdir(parents=True, exist_ok=True)
        written = 0
        for info, rel in members:
            target = dest.joinpath(*rel.parts)
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.is_symlink() or target.is_dir():
                raise UserError(
                    f"zip entry {info.filename!r} is stored twice or as a file and a folder", path=archive
                )
            try:
                with zf.open(info) as src, open(target, "xb") as out:
                    entry = 0
                    while chunk := src.read(_CHUNK):
                        written += len(chunk)
                        entry += len(chunk)
                        if (
                            entry > info.file_size
                            or entry > RATIO_FLOOR
                            and entry > MAX_RATIO * max(info.compress_size, 1)
                        ):
                            raise UserError(
                                f"zip entry {info.filename!r} expands past its declared size or "
                                f"{MAX_RATIO}x its compressed size (a zip bomb?); refusing to unpack it",
                                path=archive,
                                hint="re-download the package from its author",
                            )
                        if written > limit:
                            raise UserError(
                                f"zip archive expands past the limit of {limit} bytes",
                                path=archive,
                                hint=_LIMIT_HINT,
                            )
                        out.write(chunk)
            except FileExistsError:
                raise UserError(f"zip entry {info.filename!r} is stored twice", path=archive) from None
            except (zipfile.BadZipFile, OSError, EOFError) as exc:
                raise UserError(f"corrupt zip entry {info.filename!r} ({exc})", path=archive) from None
    return dest


def _check_ratio(info: zipfile.ZipInfo, archive: Path) -> None:
    if info.file_size > RATIO_FLOOR and info.file_size > MAX_RATIO * max(info.compress_size, 1):
        raise UserError(
            f"zip entry {info.filename!r} would expand {info.file_size} bytes from "
            f"{info.compress_size} ({info.file_size // max(info.compress_size, 1)}x, limit {MAX_RATIO}x: "
            "a zip bomb?); refusing to unpack it",
            path=archive,
            hint="re-download the package from its author",
        )


def sha256_of(path: str | Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def verify_sha256(path: str | Path, expected: str | None, *, what: str = "file") -> None:
    """Raise a :class:`UserError` when ``path`` does not exist or its sha256 differs from ``expected``.

    ``expected=None`` (the description gives no hash) only checks that the file exists.
    """
    path = Path(path)
    if not path.is_file():
        raise IntegrityError(
            f"the package's {what} is missing", path=path, hint="the package is incomplete; re-download it"
        )
    if expected is None:
        return
    actual = sha256_of(path)
    if actual.lower() != str(expected).lower():
        raise IntegrityError(
            f"sha256 mismatch for the package's {what}: expected {expected}, got {actual}",
            path=path,
            hint="the file was changed or corrupted; re-download the package",
        )

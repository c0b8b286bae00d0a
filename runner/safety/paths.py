"""Files a package refers to must lie inside the package; paths we publish must not name the user's machine.

A description written by a stranger can name ``/home/you/.ssh/id_rsa`` or ``../../secret.pt`` as a weight
file, test tensor or README. :func:`inside_package` resolves a reference against the package root (symbolic
links followed) and refuses anything that ends up outside it, remote URLs included (runner works offline).
:func:`referenced_files` lists every file a description refers to, so a package is checked, copied or
published file by file, never as "the whole folder".
"""

from __future__ import annotations

import os
import re
from pathlib import Path, PurePosixPath
from typing import Any

from runner.safety.archive import IntegrityError


class OutsidePackageError(IntegrityError):
    """A description refers to a file outside its package (never fallen back from silently)."""


def reference_text(reference: Any) -> str:
    """What a reference says: a URL in full (pydantic URLs have a ``path`` too), else its (relative) path."""
    if getattr(reference, "scheme", None) and hasattr(reference, "host"):
        return str(reference)
    return str(getattr(reference, "path", reference))


def inside_package(
    root: str | Path, reference: Any, *, what: str = "file", source: str | Path | None = None
) -> Path:
    """The local path of ``reference`` (a string, path or bioimageio.spec source) inside ``root``.

    Parameters
    ----------
    root : the package folder (an unpacked zip, or the folder of the rdf).
    reference : what the description says (relative path; absolute paths and URLs are refused).
    what : what the file is, for the message (``onnx weights``, ``test input``).
    source : what the user gave (zip, folder, rdf), named in the message; default ``root``.

    Raises
    ------
    OutsidePackageError
        Absolute path, ``..`` leaving the package, a link pointing outside, or a remote URL.
    """
    text = reference_text(reference)
    where = source if source is not None else root
    if "://" in text:
        raise OutsidePackageError(
            f"the package's {what} is a remote URL ({text}); runner works offline and reads only files "
            "inside the package",
            path=where,
            hint="download the file into the package and refer to it by a relative path",
        )
    root_real = Path(os.path.realpath(root))
    rel = PurePosixPath(text.replace("\\", "/"))
    if rel.is_absolute() or (len(text) > 1 and text[1] == ":"):
        raise OutsidePackageError(
            f"the package's {what} is the absolute path {text}, outside the package; refusing to read it",
            path=where,
            hint="a package may only refer to its own files, by relative paths",
        )
    candidate = Path(os.path.realpath(root_real.joinpath(*rel.parts)))
    if candidate != root_real and root_real not in candidate.parents:
        raise OutsidePackageError(
            f"the package's {what} {text} points outside the package (to {candidate}); refusing to read it",
            path=where,
            hint="a package may only refer to its own files, by relative paths without '..' or links",
        )
    return candidate


_FILE_LISTS = ("covers", "test_inputs", "test_outputs", "sample_inputs", "sample_outputs", "files")


def _sources(obj: Any, where: str, seen: set[int]) -> list[tuple[str, Any]]:
    """``(field, source)`` of every file a bioimageio.spec node or a plain rdf mapping refers to."""
    if id(obj) in seen or obj is None or isinstance(obj, (str, bytes, int, float, bool)):
        return []
    seen.add(id(obj))
    found: list[tuple[str, Any]] = []
    if isinstance(obj, dict):
        items = [(str(k), v) for k, v in obj.items()]
    elif isinstance(obj, (list, tuple)):
        items = [(str(i), v) for i, v in enumerate(obj)]
    elif hasattr(type(obj), "model_fields"):
        items = [(n, getattr(obj, n, None)) for n in type(obj).model_fields]
    else:
        return []
    for key, value in items:
        field = f"{where}.{key}" if where else key
        if key == "config":
            continue  # free-form metadata, not files
        if key in ("architecture", "dependencies") and isinstance(value, str) and ":" in value:
            # format 0.4: "unet.py:UNet" (a file; a dotted import path has no .py) and "conda:env.yaml"
            head, tail = value.split(":", 1)
            file_part = tail if key == "dependencies" else head
            if key == "dependencies" or file_part.endswith(".py"):
                found.append((field, file_part))
            continue
        if key in _FILE_LISTS and isinstance(value, (list, tuple)):
            found += [(f"{field}.{i}", v) for i, v in enumerate(value) if isinstance(v, str)]
        if key in ("source", "documentation") and value is not None and not isinstance(value, (dict, list)):
            if not hasattr(type(value), "model_fields") or hasattr(value, "path"):
                found.append((field, value))
                continue
        found += _sources(value, field, seen)
    return found


def referenced_files(descr: Any) -> list[str]:
    """Relative paths of every file a description refers to (weights, architecture, tensors, docs, covers).

    ``descr`` is a bioimageio.spec description or the rdf mapping; remote and absolute references are
    returned as written (check them with :func:`inside_package`).
    """
    return list(dict.fromkeys(reference_text(ref) for _, ref in _sources(descr, "", set())))


def check_references(root: str | Path, descr: Any, *, source: str | Path | None = None) -> list[Path]:
    """:func:`inside_package` for every local file ``descr`` refers to (named by its field); their paths.

    Remote references (``https://...`` covers or documentation, common in zoo rdfs) are skipped here: runner
    never fetches them, and :meth:`runner.inference.package.Package.file` refuses a remote file it would use.
    """
    return [
        inside_package(root, ref, what=field, source=source)
        for field, ref in _sources(descr, "", set())
        if "://" not in reference_text(ref)  # remote docs/covers are never fetched; files used
    ]  # by runner (weights, tensors) are refused when remote by Package.file


_ABSOLUTE = re.compile(r"^(/|~[/\\]|[A-Za-z]:[/\\]|\\\\)")


def shareable_name(path: str | Path, *, keep: int = 2) -> str:
    """What a published package may record of a local path: a relative path as given, else its last
    ``keep`` components (``/home/me/data/dsb2018/val`` -> ``dsb2018/val``).

    Absolute paths, home-relative paths and relative paths climbing out with ``..`` name the user's machine
    (user names, project folders), so they never leave it.
    """
    text = str(path).replace("\\", "/")
    parts = [p for p in text.split("/") if p not in ("", ".")]
    if _ABSOLUTE.match(str(path)) or ".." in parts:
        parts = [p for p in parts if p not in ("..", "~") and not p.endswith(":")]
        return "/".join(parts[-keep:]) if parts else ""
    return "/".join(parts)


_PATH_TOKEN = re.compile(r"(?<![\w:/.~])(?:~|[A-Za-z]:)?/[\w.\-]+(?:/[\w.\-]+)+")


def scrub_text(text: str, *, keep: int = 2) -> str:
    """``text`` with every absolute local path in it (``/home/me/data/x``) replaced by :func:`shareable_name`;
    URLs are left alone."""
    return _PATH_TOKEN.sub(lambda m: shareable_name(m.group(0), keep=keep), text)


def scrub_local_paths(obj: Any, *, keep: int = 2) -> Any:
    """A copy of a YAML/JSON-like value with every absolute local path string replaced by
    :func:`shareable_name` (strings with spaces or URLs are left alone)."""
    if isinstance(obj, dict):
        return {k: scrub_local_paths(v, keep=keep) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [scrub_local_paths(v, keep=keep) for v in obj]
    if isinstance(obj, str):
        return scrub_text(obj, keep=keep)
    return obj


def local_paths_in(obj: Any, *, where: str = "") -> list[str]:
    """``key.path: value`` for every absolute local path string in a YAML/JSON-like value."""
    if isinstance(obj, dict):
        return [
            h for k, v in obj.items() for h in local_paths_in(v, where=f"{where}.{k}" if where else str(k))
        ]
    if isinstance(obj, (list, tuple)):
        return [h for i, v in enumerate(obj) for h in local_paths_in(v, where=f"{where}[{i}]")]
    if isinstance(obj, str) and scrub_text(obj) != obj:
        return [f"{where}: {obj}"]
    return []

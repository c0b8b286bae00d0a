"""Which images a ``runner predict`` run reads: files, globs or folders, one set per model input.

``--input images/`` (or a file, or ``"images/*.tif"``) feeds the model's only input; a model with several
inputs gets ``--input raw=images/ --input mask=masks/``, matched by file name, or one file per input
(``--input raw=a.tif --input mask=b.tif``), which belong together whatever their names. Ground-truth folders
(``--gt``) are matched by name too, ignoring label-ish suffixes such as ``_mask``.
"""

from __future__ import annotations

import glob
import re
from dataclasses import dataclass, field
from pathlib import Path

from runner.errors import UserError
from runner.io import IMAGE_SUFFIXES, list_images, natural_key, stem

_LABEL_SUFFIX = re.compile(
    r"([_\-. ]?(mask|masks|label|labels|gt|groundtruth|ground_truth|seg|instances))$", re.I
)


@dataclass
class Job:
    """One image to predict: a name (output file stem) and one path per model input."""

    name: str
    paths: dict[str, Path]
    gt: Path | None = None
    extra: dict = field(default_factory=dict)


def expand(spec: str | Path) -> list[Path]:
    """Files named by a file path, a folder (its images) or a glob pattern, in natural order."""
    text = str(spec)
    path = Path(text)
    if path.is_dir() and path.suffix.lower() != ".zarr":
        files = list_images(path)
        if not files:
            raise UserError(
                "no images found in the folder", path=path, hint=f"expected {', '.join(IMAGE_SUFFIXES)}"
            )
        return files
    if path.exists():
        return [path]
    if any(ch in text for ch in "*?["):
        files = [Path(p) for p in glob.glob(text) if p.lower().endswith(IMAGE_SUFFIXES)]
        if not files:
            raise UserError(f"the pattern {text!r} matches no images")
        return sorted(files, key=lambda p: natural_key(p.name))
    raise UserError(
        "input not found", path=path, hint="give an image file, a folder of images or a glob pattern"
    )


def split_named(specs: list[str], input_ids: list[str]) -> dict[str, str]:
    """``["raw=a/", "mask=b/"]`` -> ``{"raw": "a/", "mask": "b/"}``; an unnamed spec feeds the first input."""
    if not specs:
        raise UserError("no input given", hint="pass --input IMAGES (a file, folder or glob)")
    named: dict[str, str] = {}
    for spec in specs:
        name, sep, rest = spec.partition("=")
        if sep and name in input_ids:
            named[name] = rest
        elif sep and not Path(spec).exists() and re.fullmatch(r"[A-Za-z_][\w\-]*", name):
            raise UserError(f"the model has no input {name!r}", hint=f"its inputs are {', '.join(input_ids)}")
        elif len(specs) == 1:
            named[input_ids[0]] = spec
        else:
            raise UserError(
                f"with several --input options each needs NAME=PATH, got {spec!r}",
                hint=f"the model's inputs are {', '.join(input_ids)}",
            )
    return named


def _key(path: Path) -> str:
    return _name_key(stem(path))


def _name_key(name: str) -> str:
    return _LABEL_SUFFIX.sub("", name).lower()


def collect_jobs(
    specs: list[str], input_ids: list[str], *, required: list[str] | None = None, gt: str | Path | None = None
) -> list[Job]:
    """Build the list of :class:`Job` s, matching files of several inputs and ground truth by name.

    Raises
    ------
    UserError
        Missing inputs, no images, or an image without its partner file in another input.
    """
    named = split_named(specs, input_ids)
    required = list(required if required is not None else input_ids)
    missing = [r for r in required if r not in named]
    if missing:
        raise UserError(
            f"no images given for input(s) {', '.join(missing)}",
            hint=f"pass --input NAME=PATH for each of {', '.join(required)}",
        )
    files = {name: expand(spec) for name, spec in named.items()}
    first = next(iter(files))
    if len(files) > 1 and all(Path(spec).is_file() for spec in named.values()):
        # one file per input: they belong together whatever their names (folders pair by file name)
        jobs = [Job(name=stem(files[first][0]), paths={name: paths[0] for name, paths in files.items()})]
        if gt is not None:
            _attach_gt(jobs, Path(gt))
        return jobs
    by_key = {name: {_key(p): p for p in paths} for name, paths in files.items()}
    jobs, unpaired = [], []
    for path in files[first]:
        key = _key(path)
        paths = {first: path}
        for name in list(files)[1:]:
            other = by_key[name].get(key)
            if other is None:
                unpaired.append(f"{path.name} (no {name})")
            else:
                paths[name] = other
        jobs.append(Job(name=stem(path), paths=paths))
    if unpaired:
        raise UserError(
            f"images without a partner: {', '.join(unpaired[:5])}",
            hint="files of different inputs are matched by name",
        )
    names = [j.name for j in jobs]
    if len(set(names)) != len(names):
        raise UserError(
            "two input images have the same name; outputs would overwrite each other",
            hint="predict them in separate runs",
        )
    if gt is not None:
        _attach_gt(jobs, Path(gt))
    return jobs


def _attach_gt(jobs: list[Job], gt: Path) -> None:
    labels = {_key(p): p for p in expand(gt)}
    missing = []
    for job in jobs:
        job.gt = labels.get(_name_key(job.name))
        if job.gt is None:
            missing.append(job.name)
    if missing:
        raise UserError(
            f"{len(missing)} image(s) have no ground truth in --gt: {', '.join(missing[:5])}",
            path=gt,
            hint="label files must have the image's name (optionally with _mask etc.)",
        )

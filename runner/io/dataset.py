"""Dataset folders: ``<split>/x/*`` images paired by name with ``<split>/y/*`` instance label images."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from runner.errors import UserError
from runner.io.images import IMAGE_SUFFIXES, natural_key, stem

# Suffixes people put on mask file names, removed before pairing
# ("cell_01_mask.tif" pairs with "cell_01.tif").
_LABEL_TOKENS = re.compile(
    r"([_\-. ]?(mask|masks|label|labels|labelled|gt|groundtruth|ground_truth|seg|instances))$", re.I
)


@dataclass(frozen=True)
class Pair:
    """One training/evaluation sample: an image and its label image."""

    name: str
    image: Path
    labels: Path


def list_images(folder: str | Path) -> list[Path]:
    """Image files (and ``.zarr`` stores) in ``folder``, in natural order; hidden files are skipped."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError("folder not found", path=folder)
    files = [
        p for p in folder.iterdir() if not p.name.startswith(".") and p.name.lower().endswith(IMAGE_SUFFIXES)
    ]
    return sorted(files, key=lambda p: natural_key(p.name))


def _pair_key(path: Path) -> str:
    return _LABEL_TOKENS.sub("", stem(path)).lower()


def pair_files(images: list[Path], labels: list[Path], *, where: Path | None = None) -> list[Pair]:
    """Pair images with label files by name (label-ish suffixes such as ``_mask`` ignored).

    Raises a :class:`UserError` listing every unpaired file.
    """
    by_key: dict[str, Path] = {}
    for p in labels:
        key = _pair_key(p)
        if key in by_key:
            raise UserError(
                f"two label files pair with the same name: {by_key[key].name}, {p.name}", path=where
            )
        by_key[key] = p
    pairs, missing = [], []
    for img in images:
        key = _pair_key(img)
        lab = by_key.pop(key, None)
        if lab is None:
            missing.append(img.name)
        else:
            pairs.append(Pair(name=stem(img), image=img, labels=lab))
    if missing or by_key:
        parts = []
        if missing:
            parts.append(f"{len(missing)} image(s) without labels: {_short_list(missing)}")
        if by_key:
            parts.append(
                f"{len(by_key)} label file(s) without image: {_short_list([p.name for p in by_key.values()])}"
            )
        raise UserError(
            "; ".join(parts), path=where, hint="images in x/ and labels in y/ must have matching file names"
        )
    return pairs


def _short_list(names: list[str], n: int = 8) -> str:
    return ", ".join(names[:n]) + (f" and {len(names) - n} more" if len(names) > n else "")


def find_pairs(split_dir: str | Path, *, x: str = "x", y: str = "y") -> list[Pair]:
    """All ``(image, labels)`` pairs of one split folder holding ``x/`` and ``y/``."""
    split_dir = Path(split_dir)
    if not split_dir.is_dir():
        raise UserError("data folder not found", path=split_dir)
    xdir, ydir = split_dir / x, split_dir / y
    if not xdir.is_dir() or not ydir.is_dir():
        raise UserError(
            f"expected sub-folders {x}/ (images) and {y}/ (labels)",
            path=split_dir,
            hint="lay the data out as <split>/x/*.tif and <split>/y/*.tif",
        )
    images, labels = list_images(xdir), list_images(ydir)
    if not images and not labels:
        raise UserError("no images found", path=split_dir, hint=f"put images in {x}/ and labels in {y}/")
    return pair_files(images, labels, where=split_dir)


def find_splits(data_dir: str | Path) -> dict[str, Path]:
    """Split folders of a dataset: ``{"": data_dir}`` when it holds ``x/`` itself, else its ``*/x``
    children."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise UserError("data folder not found", path=data_dir)
    if (data_dir / "x").is_dir():
        return {"": data_dir}
    splits = {p.name: p for p in sorted(data_dir.iterdir()) if (p / "x").is_dir()}
    if not splits:
        raise UserError(
            "no split folder with an x/ sub-folder found",
            path=data_dir,
            hint="lay the data out as <data>/<split>/x/*.tif and <data>/<split>/y/*.tif",
        )
    return splits

"""Dataset folders: ``<split>/x/*`` images paired by name with ``<split>/y/*`` instance label images."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

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


# ------------------------------------------------------------------------ predictions vs ground truth


class LabelPair(NamedTuple):
    """A predicted label file and its ground truth (``runner evaluate``)."""

    name: str
    gt: Path
    pred: Path


def label_files(path: Path, what: str) -> list[Path]:
    """``[path]`` for a file, else the label images of the folder ``path`` (``what`` names it in errors)."""
    if path.is_file():
        return [path]
    if not path.exists():
        raise UserError(f"{what} not found", path=path)
    files = list_images(path)
    if not files:
        raise UserError(
            f"no label images in the {what} folder", path=path, hint="expected .tif/.tiff/.png/.npy files"
        )
    return files


def _base_name(path: Path) -> str:
    s = _LABEL_TOKENS.sub("", stem(path))
    return re.sub(r"[_\-. ]?(pred|prediction|predictions|instances|labels)$", "", s, flags=re.I) or stem(path)


def label_key(path: Path) -> str:
    """Pairing key of a label/prediction file: its stem without ``_mask``, ``_gt``, ``_pred``... suffixes."""
    return _base_name(path).lower()


def pair_label_files(
    pred_files: list[Path], gt_files: list[Path], *, pred_dir: Path, gt_dir: Path
) -> list[LabelPair]:
    """Predictions paired with ground truth by file name (suffixes such as ``_mask``/``_pred`` ignored)."""
    key = label_key
    if len(pred_files) == 1 and len(gt_files) == 1:
        return [LabelPair(_base_name(gt_files[0]), gt_files[0], pred_files[0])]
    gts: dict[str, Path] = {}
    for p in gt_files:
        if key(p) in gts:
            raise UserError(
                f"two ground-truth files pair with the same name: {gts[key(p)].name}, {p.name}", path=gt_dir
            )
        gts[key(p)] = p
    pairs: list[LabelPair] = []
    missing_gt: list[str] = []
    for p in pred_files:
        g = gts.pop(key(p), None)
        if g is None:
            missing_gt.append(p.name)
        else:
            pairs.append(LabelPair(_base_name(g), g, p))
    if missing_gt or gts:
        parts = []
        if missing_gt:
            parts.append(
                f"{len(missing_gt)} prediction(s) without ground truth in {gt_dir}: "
                f"{_short_list(missing_gt, 6)}"
            )
        if gts:
            parts.append(
                f"{len(gts)} ground-truth file(s) without prediction in {pred_dir}: "
                f"{_short_list([p.name for p in gts.values()], 6)}"
            )
        raise UserError("; ".join(parts), hint="predictions and ground truth must have matching file names")
    return pairs


def pair_images_with_labels(
    label_files: list[Path], image: Path | None, labels_path: Path
) -> list[tuple[Path, Path | None]]:
    """Each label file with its intensity image: ``image`` itself (one label file), the file of the folder
    ``image`` with the same name, or None without ``image``; a label file without an image is an error."""
    if image is None:
        return [(p, None) for p in label_files]
    if image.is_file():
        if len(label_files) != 1:
            raise UserError(
                "--image is one file but LABELS is a folder",
                path=image,
                hint="give a folder of images paired with the label files by name",
            )
        return [(label_files[0], image)]
    by_key = {label_key(p): p for p in list_images(image)}
    out, missing = [], []
    for lab in label_files:
        img = by_key.get(label_key(lab))
        if img is None:
            missing.append(lab.name)
        out.append((lab, img))
    if missing:
        raise UserError(
            f"{len(missing)} label file(s) without an image in {image}: {', '.join(missing[:6])}",
            path=labels_path,
            hint="images and labels must have matching file names",
        )
    return out


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

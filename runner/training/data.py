"""Training/validation data: image + label pairs read once, normalised, with targets precomputed per image."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from runner.errors import UserError
from runner.io import Pair, find_pairs, find_splits, gray_if_lossless, read_image, read_labels
from runner.recipes import Recipe
from runner.training.preprocess import normalize

MAX_FG_INDICES = 50_000
"""Foreground pixel indices kept per image for foreground-centred crops (a random subset when more)."""


@dataclass
class Sample:
    """One image with everything training needs, computed once."""

    name: str
    image: np.ndarray
    """``(C, (Z,) Y, X)`` float32, normalised with the recipe's preprocessing."""
    targets: np.ndarray
    """``(T, (Z,) Y, X)`` float16 target channels of the recipe's code; ``(0, ...)`` when they are made per
    crop (PatchPerPix, see :func:`crop_targets`)."""
    labels: np.ndarray
    """``(Z,) Y, X`` uint32 instance labels (ground truth of the validation metric)."""
    weights: np.ndarray | None = None
    """``(Z,) Y, X`` float16 gradient-anomaly loss weights, or None."""
    classes: np.ndarray | None = None
    """``(Z,) Y, X`` uint8 class per pixel (0 = background), when the recipe has a class head."""
    fg_index: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    """Flat indices of (up to :data:`MAX_FG_INDICES`) foreground pixels."""

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.image.shape[1:])


@dataclass
class Datasets:
    """The training and validation samples of a run and where they came from."""

    train: list[Sample]
    val: list[Sample]
    source: dict[str, str]
    """How the split was made: ``{"train": path, "val": path or "<fraction> of train"}``."""


def split_pairs(data_dir: str | Path, recipe: Recipe) -> tuple[list[Pair], list[Pair], dict[str, str]]:
    """Training and validation pairs: ``<data>/train`` + ``<data>/val``, or a seeded split of one folder."""
    data_dir = Path(data_dir)
    splits = find_splits(data_dir)
    if "" in splits or "train" not in splits:
        if "" not in splits:
            raise UserError(
                f"no train/ split found (splits: {', '.join(splits)})",
                path=data_dir,
                hint="lay the data out as <data>/train/{x,y} and optionally <data>/val/{x,y}",
            )
        pairs = find_pairs(splits[""])
        return _fraction_split(pairs, recipe, str(splits[""]))
    train = find_pairs(splits["train"])
    val_dir = splits.get("val") or splits.get("validation")
    if val_dir is None or _empty_split(val_dir):
        return _fraction_split(train, recipe, str(splits["train"]))
    return train, find_pairs(val_dir), {"train": str(splits["train"]), "val": str(val_dir)}


def _empty_split(split: Path) -> bool:
    from runner.io import list_images

    return all(not (split / sub).is_dir() or not list_images(split / sub) for sub in ("x", "y"))


def _fraction_split(pairs: list[Pair], recipe: Recipe, where: str):
    frac = recipe.data.val_fraction
    n_val = int(round(frac * len(pairs))) if len(pairs) > 1 else 0
    if frac > 0 and len(pairs) > 1:
        n_val = max(1, min(n_val, len(pairs) - 1))
    order = np.random.default_rng(recipe.training.seed).permutation(len(pairs))
    val = sorted((pairs[i] for i in order[:n_val]), key=lambda p: p.name)
    train = [p for p in pairs if p not in val]
    return train, val, {"train": where, "val": f"{frac:g} of {where} (seed {recipe.training.seed})"}


def load_sample(pair: Pair, recipe: Recipe, *, index: int = 0) -> Sample:
    """Read one pair, check it against the recipe, normalise the image and compute its targets."""
    from runner.targets import gradient_anomaly_weights, make_targets

    image = read_image(pair.image, axes=recipe.data.axes)
    if image.ndim != recipe.dims:
        raise UserError(
            f"image is {image.ndim}D (axes {image.axes}) but the recipe trains a {recipe.dims}D model",
            path=pair.image,
            hint="use a recipe with the right 'dims', or --axes-like 'data.axes'",
        )
    if recipe.input_channels == 1:
        image.data = gray_if_lossless(image.data, 1)
    if image.data.shape[0] != recipe.input_channels:
        raise UserError(
            f"image has {image.data.shape[0]} channel(s) but the recipe expects "
            f"{recipe.input_channels} (input_channels)",
            path=pair.image,
        )
    labels = read_labels(pair.labels, spatial_shape=image.data.shape[1:])
    if crop_targets(recipe):  # made per crop after augmentation (PatchPerPix): nothing to keep here
        targets = np.zeros((0, *labels.data.shape), np.float16)
    else:
        targets = make_targets(labels.data, recipe.targets.code, recipe.targets.options)
    weights = None
    if recipe.loss.gradient_anomaly is not None:
        weights = gradient_anomaly_weights(labels.data, recipe.loss.gradient_anomaly).astype(np.float16)
    classes = _classes(labels, recipe, pair.labels)
    fg = np.flatnonzero(labels.data)
    if fg.size > MAX_FG_INDICES:
        rng = np.random.default_rng([recipe.training.seed, index])
        fg = np.sort(rng.choice(fg, MAX_FG_INDICES, replace=False))
    return Sample(
        name=pair.name,
        image=normalize(image.data, recipe.preprocessing),
        targets=targets.astype(np.float16),
        labels=labels.data,
        weights=weights,
        classes=classes,
        fg_index=fg.astype(np.int64),
    )


def crop_targets(recipe: Recipe) -> bool:
    """Whether the recipe's targets are made per training crop from the labels (see runner.targets.ppp)."""
    from runner.targets import channel_specs
    from runner.targets.ppp import per_crop

    return per_crop(channel_specs(recipe.targets.code, recipe.targets.options))


def sample_targets(sample: Sample, recipe: Recipe) -> np.ndarray:
    """``(T, (Z,) Y, X)`` targets of a whole sample (made from its labels when not kept)."""
    if sample.targets.shape[0]:
        return sample.targets
    from runner.targets import make_targets

    return make_targets(sample.labels, recipe.targets.code, recipe.targets.options)


def _classes(labels, recipe: Recipe, path: Path) -> np.ndarray | None:
    n = recipe.targets.n_classes
    if n <= 2:
        return None
    if labels.classes is None:
        raise UserError(
            f"the recipe has a class head (targets.n_classes = {n}) but the label file has no class channel",
            path=path,
            hint="labels need 2 channels: instance ids, then the class of each instance (0 = background)",
        )
    top = int(labels.classes.max(initial=0))
    if top >= n:
        raise UserError(f"class id {top} found but targets.n_classes is {n} (ids 0..{n - 1})", path=path)
    return np.where(labels.data > 0, labels.classes, 0).astype(np.uint8)


def load_datasets(data_dir: str | Path, recipe: Recipe, *, progress: bool = True) -> Datasets:
    """Read every training and validation pair of ``data_dir`` (targets computed once per image)."""
    from tqdm import tqdm

    train_pairs, val_pairs, source = split_pairs(data_dir, recipe)
    if recipe.data.held_out:
        held = set(recipe.data.held_out)
        train_pairs = [p for p in train_pairs if p.name not in held]
        source = {**source, "held_out": f"{len(held)} image(s) listed in data.held_out (for tuning)"}
    if not train_pairs:
        raise UserError(
            "no training pairs found", path=data_dir, hint="put images in train/x and labels in train/y"
        )
    if recipe.validation.max_images is not None:
        val_pairs = val_pairs[: recipe.validation.max_images]
    todo = [("train", p) for p in train_pairs] + [("val", p) for p in val_pairs]
    out: dict[str, list[Sample]] = {"train": [], "val": []}
    bar = tqdm(todo, desc="reading data + targets", unit="img", disable=not progress, leave=False)
    for i, (role, pair) in enumerate(bar):
        out[role].append(load_sample(pair, recipe, index=i))
    train = usable_for_training(out["train"], recipe, where=Path(data_dir))
    return Datasets(train=train, val=out["val"], source=source)


def usable_for_training(samples: list[Sample], recipe: Recipe, *, where: Path) -> list[Sample]:
    """Samples a patch can be cut from: all of them with padding, those at least the patch size without."""
    if recipe.data.pad_mode != "none":
        return samples
    patch = recipe.data.patch
    keep = [s for s in samples if all(n >= p for n, p in zip(s.shape, patch, strict=True))]
    if not keep:
        largest = max((s.shape for s in samples), key=lambda t: int(np.prod(t)))
        raise UserError(
            f"data.patch {list(patch)} is larger than every training image (largest {list(largest)}) "
            "and data.pad_mode is 'none'",
            path=where,
            hint="use a smaller data.patch or data.pad_mode: reflect",
        )
    return keep

"""Random training crops biased to foreground, padded when an image is smaller than the patch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from runner.recipes import Recipe
from runner.training.augment import Patch, augment
from runner.training.data import Sample


@dataclass
class Batch:
    """A stack of augmented patches, ready for ``torch.from_numpy``."""

    image: np.ndarray
    """``(B, C, (Z,) Y, X)`` float32."""
    targets: np.ndarray
    """``(B, T, (Z,) Y, X)`` float32."""
    mask: np.ndarray
    """``(B, (Z,) Y, X)`` float32, 0 on padding."""
    weight: np.ndarray | None
    """``(B, (Z,) Y, X)`` float32 gradient-anomaly weights, or None."""
    classes: np.ndarray | None
    """``(B, (Z,) Y, X)`` int64 class map, or None."""


class PatchSampler:
    """Draws augmented patches from ``samples``; every random choice comes from the generator passed in.

    A crop is centred on a random foreground pixel with probability ``data.foreground_crop`` (shifted by up to
    a quarter patch), otherwise placed uniformly; images are picked uniformly or by area
    (``data.image_sampling``).
    """

    def __init__(self, samples: list[Sample], recipe: Recipe):
        if not samples:
            raise ValueError("no samples to draw patches from")
        self.samples = samples
        self.recipe = recipe
        self.patch = tuple(recipe.data.patch)
        if recipe.data.image_sampling == "area":
            sizes = np.array([np.prod(s.shape) for s in samples], np.float64)
        else:
            sizes = np.ones(len(samples))
        self.probs = sizes / sizes.sum()

    def crop(self, sample: Sample, rng: np.random.Generator) -> Patch:
        """One un-augmented crop of ``sample`` of the patch size."""
        region, pads = self.region(sample, rng)
        return self.cut(sample, region, pads)

    def region(
        self, sample: Sample, rng: np.random.Generator
    ) -> tuple[tuple[slice, ...], list[tuple[int, int]]]:
        """Where to crop (one slice per axis) and how to pad each axis (before, after) to the patch size."""
        shape = sample.shape
        use_fg = sample.fg_index.size > 0 and rng.random() < self.recipe.data.foreground_crop
        if use_fg:
            center = np.unravel_index(int(sample.fg_index[rng.integers(sample.fg_index.size)]), shape)
        starts, pads = [], []
        for axis, (s, p) in enumerate(zip(shape, self.patch, strict=True)):
            if s >= p:
                if use_fg:
                    jitter = int(rng.integers(-(p // 4), p // 4 + 1))
                    start = int(np.clip(center[axis] - p // 2 + jitter, 0, s - p))
                else:
                    start = int(rng.integers(0, s - p + 1))
                starts.append(slice(start, start + p))
                pads.append((0, 0))
            else:
                before = int(rng.integers(0, p - s + 1))
                starts.append(slice(0, s))
                pads.append((before, p - s - before))
        return tuple(starts), pads

    def targets_of(self, sample: Sample, region: tuple[slice, ...]) -> np.ndarray:
        """Target channels of the crop (from the precomputed ones)."""
        return sample.targets[(slice(None), *region)].astype(np.float32)

    def cut(self, sample: Sample, region: tuple[slice, ...], pads: list[tuple[int, int]]) -> Patch:
        """The crop ``region`` of every array of ``sample``, padded by ``pads``."""
        image = sample.image[(slice(None), *region)]
        targets = self.targets_of(sample, region)
        mask = np.ones(image.shape[1:], np.float32)
        weight = None if sample.weights is None else sample.weights[region].astype(np.float32)
        classes = None if sample.classes is None else sample.classes[region]
        labels = sample.labels[region] if targets.shape[0] == 0 else None  # targets made after augmentation
        if any(b or a for b, a in pads):
            mode: Literal["reflect", "constant"] = (
                "reflect" if self.recipe.data.pad_mode == "reflect" else "constant"
            )
            image = np.pad(image, [(0, 0), *pads], mode=mode)
            targets = np.pad(targets, [(0, 0), *pads], mode=mode)
            mask = np.pad(mask, pads, mode="constant")
            weight = None if weight is None else np.pad(weight, pads, mode=mode)
            classes = None if classes is None else np.pad(classes, pads, mode=mode)
            labels = None if labels is None else np.pad(labels, pads, mode="constant")
        return Patch(
            image=image.astype(np.float32),
            targets=targets,
            mask=mask,
            weight=weight,
            classes=classes,
            labels=labels,
        )

    def sample(self, rng: np.random.Generator) -> Patch:
        """One augmented patch."""
        sample = self.samples[int(rng.choice(len(self.samples), p=self.probs))]
        patch = augment(self.crop(sample, rng), self.recipe.augmentation, rng)
        if patch.labels is not None:  # PatchPerPix: targets of the augmented label crop
            from runner.targets import make_targets

            opts = self.recipe.targets.options
            patch.targets = make_targets(patch.labels, self.recipe.targets.code, opts).astype(np.float32)
        return patch

    def batch(self, rng: np.random.Generator, size: int | None = None) -> Batch:
        """``size`` (default: the recipe's batch size) augmented patches, stacked."""
        patches = [self.sample(rng) for _ in range(size or self.recipe.training.batch_size)]
        has_w = patches[0].weight is not None
        has_c = patches[0].classes is not None
        return Batch(
            image=np.stack([p.image for p in patches]),
            targets=np.stack([p.targets for p in patches]),
            mask=np.stack([p.mask for p in patches]),
            weight=_stack_all([p.weight for p in patches]) if has_w else None,
            classes=_stack_all([p.classes for p in patches]).astype(np.int64) if has_c else None,
        )


def _stack_all(arrays: list[np.ndarray | None]) -> np.ndarray:
    """Stack an optional array that every patch has (a dataset has weights or classes for all or none)."""
    present = [a for a in arrays if a is not None]
    if len(present) != len(arrays):
        raise ValueError("some patches of the batch lack an array that the others have")
    return np.stack(present)

"""Random transforms of one training patch; every random draw comes from the ``rng`` passed in.

A patch is a :class:`Patch` of arrays with the same spatial shape: the image, the target channels, the loss
mask/weights and the class map. Geometric transforms move all of them alike; intensity transforms touch only
the image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from runner.recipes import AugmentationSection


@dataclass
class Patch:
    """One training crop."""

    image: np.ndarray
    """``(C, (Z,) Y, X)`` float32."""
    targets: np.ndarray
    """``(T, (Z,) Y, X)`` float32."""
    mask: np.ndarray
    """``((Z,) Y, X)`` float32: 1 on image pixels, 0 on padding (left out of the loss)."""
    weight: np.ndarray | None = None
    """``((Z,) Y, X)`` float32 per-pixel loss weights (gradient anomaly), or None."""
    classes: np.ndarray | None = None
    """``((Z,) Y, X)`` uint8 class map, or None."""
    labels: np.ndarray | None = None
    """``((Z,) Y, X)`` instance labels when the targets are made after augmentation (PatchPerPix), or None."""

    def map_spatial(self, fn, *, order_classes=None) -> None:
        """Apply ``fn(array_with_leading_axis)`` to every array (classes through ``order_classes``)."""
        self.image = fn(self.image)
        self.targets = fn(self.targets)
        self.mask = fn(self.mask[np.newaxis])[0]
        if self.weight is not None:
            self.weight = fn(self.weight[np.newaxis])[0]
        if self.classes is not None:
            self.classes = (order_classes or fn)(self.classes[np.newaxis])[0]
        if self.labels is not None:
            self.labels = (order_classes or fn)(self.labels[np.newaxis])[0]


def augment(patch: Patch, config: AugmentationSection, rng: np.random.Generator) -> Patch:
    """Apply the recipe's augmentations to ``patch`` (in place where possible) and return it."""
    ndim = patch.image.ndim - 1
    if config.flip:
        for axis in range(ndim):
            if rng.random() < 0.5:
                patch.map_spatial(lambda a, ax=axis: np.flip(a, axis=1 + ax))
    if config.rotate90:
        square = patch.image.shape[-1] == patch.image.shape[-2]
        k = int(rng.integers(4)) if square else 2 * int(rng.integers(2))
        if k:
            patch.map_spatial(lambda a: np.rot90(a, k, axes=(-2, -1)))
    if config.elastic.p > 0 and rng.random() < config.elastic.p:
        _elastic(patch, config.elastic.magnitude, config.elastic.spacing, rng)
    _intensity(patch, config, rng)
    patch.image = np.ascontiguousarray(patch.image, dtype=np.float32)
    patch.targets = np.ascontiguousarray(patch.targets, dtype=np.float32)
    patch.mask = np.ascontiguousarray(patch.mask, dtype=np.float32)
    if patch.weight is not None:
        patch.weight = np.ascontiguousarray(patch.weight, dtype=np.float32)
    if patch.classes is not None:
        patch.classes = np.ascontiguousarray(patch.classes)
    if patch.labels is not None:
        patch.labels = np.ascontiguousarray(patch.labels)
    return patch


def _elastic(patch: Patch, magnitude: float, spacing: int, rng: np.random.Generator) -> None:
    """Warp by a smooth random displacement (cubic interpolation of a coarse Gaussian grid)."""
    shape = patch.image.shape[1:]
    coarse = tuple(max(2, int(np.ceil(s / spacing)) + 1) for s in shape)
    grids = []
    for axis, s in enumerate(shape):
        d = rng.normal(0.0, magnitude, coarse).astype(np.float32)
        d = ndi.zoom(d, [n / c for n, c in zip(shape, coarse, strict=True)], order=3, mode="nearest")
        d = d[tuple(slice(0, n) for n in shape)]
        grid = np.arange(s, dtype=np.float32).reshape([-1 if i == axis else 1 for i in range(len(shape))])
        grids.append(grid + d)
    coords = np.stack(np.broadcast_arrays(*grids))

    def warp(a: np.ndarray, order: int = 1) -> np.ndarray:
        out = np.empty(a.shape, np.float32 if order else a.dtype)
        for i in range(a.shape[0]):
            out[i] = ndi.map_coordinates(a[i].astype(np.float32), coords, order=order, mode="mirror")
        return out

    patch.map_spatial(warp, order_classes=lambda a: warp(a, order=0).astype(a.dtype))
    patch.mask = (patch.mask > 0.5).astype(np.float32)


def _intensity(patch: Patch, config: AugmentationSection, rng: np.random.Generator) -> None:
    img = patch.image
    if config.intensity.p > 0 and rng.random() < config.intensity.p:
        scale = rng.uniform(*config.intensity.scale)
        shift = rng.uniform(*config.intensity.shift)
        img = img * np.float32(scale) + np.float32(shift)
    if config.gamma.p > 0 and rng.random() < config.gamma.p:
        lo, hi = np.log(config.gamma.gamma[0]), np.log(config.gamma.gamma[1])
        gamma = float(np.exp(rng.uniform(lo, hi)))
        axes = tuple(range(1, img.ndim))
        mn, mx = img.min(axis=axes, keepdims=True), img.max(axis=axes, keepdims=True)
        rng_ = np.maximum(mx - mn, 1e-6)
        img = mn + rng_ * ((img - mn) / rng_) ** np.float32(gamma)
    if config.blur.p > 0 and rng.random() < config.blur.p:
        sigma = rng.uniform(*config.blur.sigma)
        img = np.stack([ndi.gaussian_filter(c, sigma) for c in img])
    if config.noise.p > 0 and rng.random() < config.noise.p:
        std = rng.uniform(*config.noise.std)
        img = img + rng.normal(0.0, std, img.shape).astype(np.float32)
    patch.image = img.astype(np.float32, copy=False)

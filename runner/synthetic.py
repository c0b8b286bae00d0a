"""Synthetic microscopy data with known answers: touching disks/ellipsoids, crossing worms, noisy renderings.

Used by the tests, the benchmarks and ``runner synth`` (e.g. to train the 3D path when no annotated 3D data
is at hand).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi


def _ellipsoid_mask(shape, center, radii, rotation: float = 0.0) -> np.ndarray:
    grids = np.ogrid[tuple(slice(0, n) for n in shape)]
    rel = [g - c for g, c in zip(grids, center, strict=True)]
    if len(shape) == 2 and rotation:
        cos, sin = np.cos(rotation), np.sin(rotation)
        y, x = rel
        rel = [cos * y - sin * x, sin * y + cos * x]
    return sum((r / a) ** 2 for r, a in zip(rel, radii, strict=True)) <= 1.0


def random_blobs(
    shape: tuple[int, ...],
    n: int,
    *,
    radius: tuple[float, float] = (6.0, 10.0),
    elongation: float = 1.3,
    touching: bool = True,
    seed: int = 0,
) -> np.ndarray:
    """Label image ``(Y, X)`` or ``(Z, Y, X)`` of up to ``n`` random ellipses/ellipsoids.

    With ``touching=True`` objects may press against each other (later ones are cut by earlier ones, then
    every object keeps only its largest connected part); otherwise they are kept at least 2 px apart.
    Ids are ``1..k`` in placement order.
    """
    rng = np.random.default_rng(seed)
    labels = np.zeros(shape, np.uint32)
    next_id = 1
    for _ in range(n * 20):
        if next_id > n:
            break
        r = rng.uniform(*radius)
        radii = [r * rng.uniform(1.0, elongation) for _ in shape]
        center = [rng.uniform(a, s - a) if s > 2 * a else s / 2 for s, a in zip(shape, radii, strict=True)]
        mask = _ellipsoid_mask(shape, center, radii, rotation=rng.uniform(0, np.pi))
        if touching:
            free = mask & (labels == 0)
            if free.sum() < 0.6 * mask.sum():
                continue
            labels[free] = next_id
        else:
            if (ndi.binary_dilation(mask, iterations=2) & (labels > 0)).any():
                continue
            labels[mask] = next_id
        next_id += 1
    return keep_largest_parts(labels)


def keep_largest_parts(labels: np.ndarray) -> np.ndarray:
    """Keep only the largest connected component of each id and renumber ``1..k``."""
    import cc3d
    import fastremap

    cc = cc3d.connected_components(labels, connectivity=4 if labels.ndim == 2 else 6)
    if cc.max() == 0:
        return labels
    sizes = np.bincount(cc.ravel())
    owner = np.zeros(len(sizes), np.int64)
    owner[cc.ravel()] = labels.ravel()
    best: dict[int, int] = {}
    for comp in np.argsort(sizes)[::-1]:
        if comp == 0 or owner[comp] == 0:
            continue
        best.setdefault(int(owner[comp]), int(comp))
    keep = np.zeros(len(sizes), bool)
    keep[list(best.values())] = True
    out = np.where(keep[cc], labels, 0).astype(np.uint32)
    out, _ = fastremap.renumber(out, in_place=True)
    return out.astype(np.uint32)


def random_worms(
    shape: tuple[int, int], n: int, *, length: float = 60.0, width: float = 4.0, seed: int = 0
) -> np.ndarray:
    """Overlapping stack ``(N, Y, X)`` of thick random curves that may cross (one worm per plane)."""
    rng = np.random.default_rng(seed)
    planes: list[np.ndarray] = []
    for _ in range(n):
        pos = np.array([rng.uniform(0.2, 0.8) * s for s in shape])
        angle = rng.uniform(0, 2 * np.pi)
        curve = rng.uniform(-0.04, 0.04)
        mask = np.zeros(shape, bool)
        for _step in range(int(length)):
            angle += curve
            pos = pos + np.array([np.sin(angle), np.cos(angle)])
            iy, ix = np.round(pos).astype(int)
            if 0 <= iy < shape[0] and 0 <= ix < shape[1]:
                mask[iy, ix] = True
        mask = ndi.binary_dilation(mask, iterations=int(round(width / 2)))
        if mask.sum() > 10:
            planes.append(mask.astype(np.uint32) * (len(planes) + 1))
    return np.stack(planes) if planes else np.zeros((0, *shape), np.uint32)


def render(
    labels: np.ndarray,
    *,
    noise: float = 0.08,
    blur: float = 1.0,
    background: float = 0.1,
    seed: int = 0,
    overlapping: bool = False,
) -> np.ndarray:
    """A fluorescence-like float32 image of ``labels``: brighter object interiors, blur, Gaussian noise."""
    rng = np.random.default_rng(seed)
    planes = labels if overlapping else labels[np.newaxis]
    image = np.full(planes.shape[1:], background, np.float32)
    for plane in planes:
        n = int(plane.max())
        brightness = np.concatenate([[0.0], rng.uniform(0.6, 1.0, n)]).astype(np.float32)
        image += brightness[plane]
    if blur:
        image = ndi.gaussian_filter(image, blur)
    image += rng.normal(0, noise, image.shape).astype(np.float32)
    return image.astype(np.float32)


def make_dataset(
    out,
    *,
    ndim: int = 2,
    n_train: int = 8,
    n_val: int = 2,
    shape: tuple[int, ...] | None = None,
    n_objects: int | None = None,
    radius: tuple[float, float] | None = None,
    seed: int = 0,
) -> None:
    """Write a synthetic dataset ``out/{train,val}/{x,y}/*.tif`` of touching blobs (2D) or nuclei (3D)."""
    from pathlib import Path

    from runner.io import write_labels, write_tiff

    out = Path(out)
    shape = shape or ((128, 128) if ndim == 2 else (48, 96, 96))
    n_objects = n_objects or (25 if ndim == 2 else 30)
    radius = radius or ((6.0, 11.0) if ndim == 2 else (6.0, 10.0))
    for split, count, offset in (("train", n_train, 0), ("val", n_val, 10_000)):
        (out / split / "x").mkdir(parents=True, exist_ok=True)
        (out / split / "y").mkdir(parents=True, exist_ok=True)
        for i in range(count):
            s = seed + offset + i
            labels = random_blobs(shape, n_objects, radius=radius, seed=s)
            image = render(labels, seed=s)
            image = np.clip(image * 200 + 10, 0, 255).astype(np.uint8)
            name = f"{split}_{i:03d}.tif"
            write_tiff(out / split / "x" / name, image, axes="zyx"[-ndim:])
            write_labels(out / split / "y" / name, labels)


def voronoi_blobs(
    shape: tuple[int, ...], n: int, *, radius: float = 12.0, seed: int = 0, fill: float = 0.9
) -> np.ndarray:
    """Many touching convex objects fast: each pixel joins its nearest of ``n`` random seeds within a radius.

    Scales to thousands of objects on large images (one EDT pass), unlike :func:`random_blobs`. Object radii
    vary between ``0.6 * radius`` and ``radius``; ``fill`` thins out seeds that would leave tiny cells.
    Ids are ``1..k``.
    """
    rng = np.random.default_rng(seed)
    seeds = np.zeros(shape, np.uint32)
    coords = tuple(rng.integers(0, s, n) for s in shape)
    seeds[coords] = np.arange(1, n + 1, dtype=np.uint32)
    dist, idx = ndi.distance_transform_edt(seeds == 0, return_indices=True)
    owner = seeds[tuple(idx)]
    radii = np.concatenate([[0.0], rng.uniform(0.6 * radius, radius, n)])
    labels = np.where(dist <= radii[owner], owner, 0).astype(np.uint32)
    del dist, idx
    if fill < 1:
        drop = np.concatenate([[False], rng.random(n) > fill])
        labels[drop[labels]] = 0
    return keep_largest_parts(labels)

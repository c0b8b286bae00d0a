"""Training set of ``unet3d_bcd_nuclei_aniso.yaml``: a real Arabidopsis volume, rescaled copies, synthetics.

Writes ``<out>/train/{x,y}/*.tif`` (no ``val/``: the real validation volume is kept for the final evaluation
only, see the recipe):

- the real annotated train volume (``arabidopsis_nuclei3d/train``, voxel 0.284 x 0.127 x 0.127 um);
- copies of it zoomed by 0.6, 0.8, 1.25 and 1.6 along every axis (same anisotropy, nuclei 40% smaller to 60%
  larger in voxels) and along Z only by 0.75 and 1.35 (anisotropy 3.0 and 1.6 instead of 2.2): scale
  augmentation done once, so the net meets other nucleus sizes, magnifications and Z steps;
- ``--n-synthetic`` synthetic volumes of touching ellipsoidal nuclei (small, medium or large, with bright
  chromatin spots) drawn isotropic, then subsampled along Z by an anisotropy between 1.6 and 3.0 and
  rendered with varied brightness, background gradient, blur and noise.

Run: ``python model_specs/prepare_nuclei3d.py ../shared/data/arabidopsis_nuclei3d runs/data/nuclei3d_mix``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

ZOOMS: tuple[tuple[float, float, float], ...] = (
    (0.6, 0.6, 0.6),
    (0.8, 0.8, 0.8),
    (1.25, 1.25, 1.25),
    (1.6, 1.6, 1.6),
    (0.75, 1.0, 1.0),
    (1.35, 1.0, 1.0),
)
"""Zoom factors (Z, Y, X) of the copies of the real volume."""
ANISOTROPY = 0.284 / 0.127
RADII = ((5.0, 9.0), (8.0, 13.0), (11.0, 17.0))
"""Nucleus radius ranges (isotropic voxels) of the synthetic volumes, used in turn."""


def _zoom(image: np.ndarray, labels: np.ndarray, factors: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
    """``image`` zoomed linearly and ``labels`` by nearest neighbour to the same shape."""
    img = ndi.zoom(image.astype(np.float32), factors, order=1, mode="nearest")
    lab = ndi.zoom(labels, factors, order=0, mode="nearest")
    return img, lab[tuple(slice(0, n) for n in img.shape)]


def synthetic_volume(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """One anisotropic ``(Z, Y, X)`` uint8 volume of touching nuclei and its labels."""
    from runner.synthetic import random_blobs

    rng = np.random.default_rng(seed)
    iso = (96, 96, 96)
    radius = RADII[seed % len(RADII)]
    count = int(rng.integers(25, 45) * (10.5 / np.mean(radius)) ** 3 * 0.8)
    labels = random_blobs(iso, max(count, 6), radius=radius, elongation=1.4, seed=seed)
    n = int(labels.max())
    bright = np.concatenate([[0.0], rng.uniform(0.25, 1.0, n)]).astype(np.float32)
    texture = 1 + 0.3 * ndi.gaussian_filter(rng.normal(0, 1, iso), 2.0)
    spots = ndi.gaussian_filter((rng.random(iso) < 0.002).astype(np.float32), 1.0) * rng.uniform(0, 40)
    image = (bright[labels] * (texture + spots * (labels > 0))).astype(np.float32)
    ramp = np.linspace(0, rng.uniform(0.0, 0.25), iso[-1], dtype=np.float32)
    image = ndi.gaussian_filter(image, rng.uniform(0.6, 2.0)) + rng.uniform(0.0, 0.2) + ramp
    image, labels = _zoom(image, labels, (1 / rng.uniform(1.6, 3.0), 1.0, 1.0))
    image = image + rng.normal(0, rng.uniform(0.02, 0.12), image.shape).astype(np.float32)
    image = np.clip(image / max(float(image.max()), 1e-6) * 230 + 5, 0, 255).astype(np.uint8)
    return image, labels.astype(np.uint32)


def main(argv: list[str] | None = None) -> None:
    from runner.io import find_pairs, read_image, read_labels, write_labels, write_tiff

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("real", type=Path, help="arabidopsis_nuclei3d folder (its train/ split is used)")
    ap.add_argument("out", type=Path, help="output dataset folder (new)")
    ap.add_argument("--n-synthetic", type=int, default=6)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)
    x_dir, y_dir = args.out / "train" / "x", args.out / "train" / "y"
    x_dir.mkdir(parents=True, exist_ok=False)
    y_dir.mkdir(parents=True)
    for pair in find_pairs(args.real / "train"):
        image = read_image(pair.image)
        raw = np.asarray(image.data)[0]
        labels = read_labels(pair.labels, spatial_shape=raw.shape).data
        res = image.info.resolution if hasattr(image, "info") else None
        raw8 = np.clip(raw, 0, 255).astype(np.uint8)
        write_tiff(x_dir / f"{pair.name}.tif", raw8, axes="zyx", resolution=res)
        write_labels(y_dir / f"{pair.name}.tif", labels)
        for zoom in ZOOMS:
            img, lab = _zoom(raw, labels, zoom)
            tag = f"{pair.name}_zoom{'x'.join(f'{f:g}' for f in zoom)}".replace(".", "p")
            write_tiff(x_dir / f"{tag}.tif", np.clip(img, 0, 255).astype(np.uint8), axes="zyx")
            write_labels(y_dir / f"{tag}.tif", lab)
    for i in range(args.n_synthetic):
        img, lab = synthetic_volume(args.seed + i)
        write_tiff(x_dir / f"synthetic_{i:02d}.tif", img, axes="zyx")
        write_labels(y_dir / f"synthetic_{i:02d}.tif", lab)
    print(f"wrote {len(list(x_dir.iterdir()))} volumes to {args.out}")


if __name__ == "__main__":
    main()

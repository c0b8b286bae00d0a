"""BCD marker-controlled watershed: ours (cc3d, numba, bioimage-cpp) vs the same steps in scikit-image/scipy.

Run: .venv/bin/python benchmarks/bench_postprocessing.py [--quick]

Inputs: a 2048x2048 label image with ~4000 touching objects and a 256^3 volume with ~3000, turned into BCD
targets by ``runner.targets.make_targets`` plus Gaussian noise (sigma 0.1, B and C clipped to [0, 1]).
Both sides run the steps of ``watershed_bcd`` with its default params: threshold B, C, D into seeds, label
them (face connectivity), drop seeds < 5 px, grow them over -D inside the interior mask, grow the result
into the contour band by distance to the grown interiors, drop objects < 10 px. The peer uses
``skimage.measure.label``, ``skimage.morphology.remove_small_objects``, ``skimage.segmentation.watershed``
(over ``scipy.ndimage.distance_transform_edt`` for the band) with their defaults otherwise; ours labels with
cc3d, floods with bioimage-cpp and fills the band with one breadth-first pass. Agreement is the fraction of
pixels whose ids correspond (each of our objects mapped to the peer object it overlaps most); the accuracy
of both against the ground truth at IoU 0.5 is printed too.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, measure, table  # noqa: E402

from runner.postprocessing import run_postprocessor  # noqa: E402
from runner.synthetic import voronoi_blobs  # noqa: E402
from runner.targets import make_targets  # noqa: E402


def skimage_bcd(pred: np.ndarray) -> np.ndarray:
    """The same steps as ``watershed_bcd`` (default params), written with scikit-image and scipy."""
    from scipy import ndimage as ndi
    from skimage.measure import label
    from skimage.morphology import remove_small_objects
    from skimage.segmentation import relabel_sequential, watershed

    b, c, d = pred
    interior = (b > 0.5) & (c < 0.3)
    foreground = (b + c) > 0.5
    seeds = label(interior & (d > 0.5) & foreground, connectivity=1)
    seeds = remove_small_objects(seeds, max_size=4)
    inner = watershed(-d, seeds, mask=(interior & foreground) | (seeds > 0))
    grown = watershed(ndi.distance_transform_edt(inner == 0), inner, mask=foreground | (inner > 0))
    grown = remove_small_objects(grown, max_size=9)
    return relabel_sequential(grown)[0].astype(np.uint32)


def ours_bcd(pred: np.ndarray) -> np.ndarray:
    return run_postprocessor("watershed_bcd", pred)


def agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Fraction of pixels where ``a``'s object, mapped to the ``b`` object it overlaps most, equals ``b``."""
    a64, b64 = a.ravel().astype(np.int64), b.ravel().astype(np.int64)
    pairs, counts = np.unique(a64 * (int(b64.max()) + 1) + b64, return_counts=True)
    pa, pb = pairs // (int(b64.max()) + 1), pairs % (int(b64.max()) + 1)
    order = np.lexsort((-counts, pa))
    first = np.r_[True, pa[order][1:] != pa[order][:-1]]
    best = np.zeros(int(a64.max()) + 1, np.int64)
    best[pa[order][first]] = pb[order][first]
    best[0] = 0
    return float(np.mean(best[a64] == b64))


def accuracy(gt: np.ndarray, pred: np.ndarray) -> float:
    from stardist.matching import matching

    return float(matching(gt, pred, thresh=0.5).accuracy)


def noisy_bcd(labels: np.ndarray, seed: int = 0) -> np.ndarray:
    pred = make_targets(labels, "BCD")
    rng = np.random.default_rng(seed)
    pred += rng.normal(0, 0.1, pred.shape).astype(np.float32)
    np.clip(pred[:2], 0, 1, out=pred[:2])
    return pred


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="smaller inputs (smoke test)")
    args = parser.parse_args()
    cases = [("2D 2048x2048", (2048, 2048), 4600, 18.0), ("3D 256^3", (256, 256, 256), 3300, 10.0)]
    if args.quick:
        cases = [("2D 512x512", (512, 512), 300, 18.0), ("3D 64^3", (64, 64, 64), 60, 10.0)]
    ours_bcd(noisy_bcd(voronoi_blobs((64, 64), 10, radius=10.0)))  # imports and JIT outside the timing
    skimage_bcd(noisy_bcd(voronoi_blobs((64, 64), 10, radius=10.0)))
    rows = []
    for name, shape, n, radius in cases:
        gt = voronoi_blobs(shape, n, radius=radius, seed=0)
        pred = noisy_bcd(gt)
        ours = measure(ours_bcd, pred)
        peer = measure(skimage_bcd, pred)
        agree = agreement(ours.result, peer.result)
        acc_ours, acc_peer = accuracy(gt, ours.result), accuracy(gt, peer.result)
        n_obj = int(gt.max())
        speedup = f"{peer.seconds / ours.seconds:.1f}x"
        rows.append(
            [
                name,
                n_obj,
                "bmz-runner watershed_bcd",
                ours.seconds,
                ours.peak_mib,
                speedup,
                f"{agree:.4f}",
                acc_ours,
            ]
        )
        rows.append(
            [
                name,
                n_obj,
                "scikit-image label + watershed",
                peer.seconds,
                peer.peak_mib,
                "",
                "reference",
                acc_peer,
            ]
        )
        print(
            f"{name}: ours {ours.seconds:.3f} s, scikit-image {peer.seconds:.3f} s, agreement {agree:.4f}",
            flush=True,
        )
    print()
    print(f"Machine: {machine()}")
    headers = [
        "input",
        "objects",
        "implementation",
        "time (s)",
        "peak extra memory (MiB)",
        "speed-up",
        "pixel agreement",
        "accuracy@0.5 vs truth",
    ]
    print(table(headers, rows))


if __name__ == "__main__":
    main()

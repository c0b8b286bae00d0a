"""Benchmark: ``runner.metrics.evaluate_image`` beside ``stardist.matching.matching`` on the same labels.

Two realistic pairs: a 2048x2048 image with ~4000 objects and a 256^3 volume with ~3000. The ground truth is a
Voronoi-like tiling of round cells (touching where crowded, background between); the prediction is the same
generator with every seed moved by 1-3 px and its radius scaled by 0.85-1.15 (shifted, dilated and eroded
objects), plus 3% missing objects, 3% spurious ones, 3% split into two and 3% merged with a neighbour.

Ours: the full evaluation (matching at the 9 default thresholds plus the avAP thresholds, AJI, AJI+, COCO mAP,
foreground IoU, split/merge counts). StarDist: its fastest use, one ``matching`` call given all 9 thresholds.
Each side runs in a fresh process on the same saved arrays, after a warm-up call so numba's compilation is not
counted; the time is the median of ``--repeat`` runs, the memory the peak resident growth during the first run
(Linux ``VmHWM``). The numbers of every field the two share are compared in the same run.

Run: ``.venv/bin/python benchmarks/bench_metrics.py`` (``--quick`` for smaller images).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from scipy import ndimage as ndi

THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
SHARED = ("tp", "fp", "fn", "precision", "recall", "accuracy", "f1", "panoptic_quality", "mean_true_score")


# --------------------------------------------------------------------------------------------- data


def voronoi_cells(shape, seeds: np.ndarray, radii: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Label image: each pixel takes the id of its nearest seed if within that seed's radius, else 0."""
    marker = np.ones(shape, bool)
    index = np.zeros(shape, np.int64)
    coords = tuple(seeds.T)
    marker[coords] = False
    index[coords] = np.arange(1, len(seeds) + 1)
    dist, nearest = ndi.distance_transform_edt(marker, return_indices=True)
    owner = index[tuple(nearest)]
    del nearest
    lut = np.concatenate([[0], ids]).astype(np.uint32)
    rad = np.concatenate([[0.0], radii])
    return np.where(dist <= rad[owner], lut[owner], 0).astype(np.uint32)


def make_pair(shape, n: int, radius: tuple[float, float], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ndim = len(shape)
    seeds = np.stack([rng.integers(0, s, n) for s in shape], axis=1)
    seeds = np.unique(seeds, axis=0)
    rng.shuffle(seeds)
    n = len(seeds)
    radii = rng.uniform(*radius, n)
    gt = voronoi_cells(shape, seeds, radii, np.arange(1, n + 1))

    k = max(1, n // 33)  # ~3% each
    moved = np.clip(seeds + rng.integers(-3, 4, seeds.shape), 0, np.array(shape) - 1)
    p_radii = radii * rng.uniform(0.85, 1.15, n)
    p_ids = np.arange(1, n + 1)
    keep = np.ones(n, bool)
    keep[rng.choice(n, k, replace=False)] = False  # missing
    # merged: an object takes the id of its nearest other seed
    from scipy.spatial import cKDTree

    tree = cKDTree(seeds)
    _, nb = tree.query(seeds, k=2)
    for i in rng.choice(n, k, replace=False):
        p_ids[i] = p_ids[nb[i, 1]]
    # split: a second seed half a radius away with a new id
    split_src = rng.choice(n, k, replace=False)
    offs = rng.normal(size=(k, ndim))
    offs = offs / np.linalg.norm(offs, axis=1, keepdims=True) * (radii[split_src, None] * 0.6)
    split_seeds = np.clip(np.round(seeds[split_src] + offs).astype(int), 0, np.array(shape) - 1)
    # spurious: new seeds anywhere
    spur = np.stack([rng.integers(0, s, k) for s in shape], axis=1)
    all_seeds = np.concatenate([moved[keep], split_seeds, spur])
    all_radii = np.concatenate([p_radii[keep], radii[split_src], rng.uniform(*radius, k)])
    all_ids = np.concatenate([p_ids[keep], n + 1 + np.arange(k), n + 1 + k + np.arange(k)])
    all_seeds, first = np.unique(all_seeds, axis=0, return_index=True)
    pred = voronoi_cells(shape, all_seeds, all_radii[first], all_ids[first])
    return gt, pred


# --------------------------------------------------------------------------------------------- measuring


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _warm_up(method: str) -> None:
    for shape, n, radius in (((128, 128), 40, (5, 9)), ((24, 32, 32), 10, (4, 6))):
        gt, pred = make_pair(shape, n, radius, seed=1)
        _run(method, gt, pred)


def _run(method: str, gt: np.ndarray, pred: np.ndarray) -> list[dict]:
    """Stats at the 9 thresholds as dicts of the shared fields."""
    if method == "ours":
        from runner.metrics import evaluate_image

        m = evaluate_image(gt, pred, thresholds=THRESHOLDS)
        return [
            {**{f: float(getattr(s, f)) for f in SHARED}, "mean_matched": s.mean_matched_iou}
            for s in m.per_threshold
        ]
    from stardist.matching import matching

    res = matching(gt, pred, thresh=THRESHOLDS)
    return [
        {**{f: float(getattr(r, f)) for f in SHARED}, "mean_matched": float(r.mean_matched_score)}
        for r in res
    ]


def worker(method: str, data: str, repeat: int) -> None:
    """Run one method on one saved pair in this (fresh) process and print a JSON line."""
    import json
    from pathlib import Path

    gt = np.load(Path(data) / "gt.npy")
    pred = np.load(Path(data) / "pred.npy")
    _warm_up(method)
    times, peak, stats = [], float("nan"), None
    for i in range(repeat):
        base = _status_kib("VmRSS")
        can = _reset_peak()
        t0 = time.perf_counter()
        stats = _run(method, gt, pred)
        times.append(time.perf_counter() - t0)
        if i == 0 and can:
            peak = (_status_kib("VmHWM") - base) / 1024
    print(json.dumps({"time": statistics.median(times), "peak_mib": peak, "stats": stats}))


def run_case(label: str, gt: np.ndarray, pred: np.ndarray, repeat: int) -> dict:
    import json
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    n_true, n_pred = len(np.unique(gt)) - 1, len(np.unique(pred)) - 1
    out = {"case": label, "objects": f"{n_true} / {n_pred}"}
    with tempfile.TemporaryDirectory() as tmp:
        np.save(Path(tmp) / "gt.npy", gt)
        np.save(Path(tmp) / "pred.npy", pred)
        for method in ("ours", "stardist"):
            proc = subprocess.run(
                [sys.executable, __file__, "--worker", method, "--data", tmp, "--repeat", str(repeat)],
                capture_output=True,
                text=True,
                check=True,
            )
            out[method] = json.loads(proc.stdout.strip().splitlines()[-1])
    out["diff"] = max(
        abs(a[k] - b[k])
        for a, b in zip(out["ours"]["stats"], out["stardist"]["stats"], strict=True)
        for k in a
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="1024x1024 / 128^3 images")
    parser.add_argument("--worker", choices=["ours", "stardist"], help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.data, args.repeat)
        return

    cases = [
        ("2D 2048x2048", (2048, 2048), 4000, (12.0, 22.0)),
        ("3D 256^3", (256, 256, 256), 3000, (9.0, 14.0)),
    ]
    if args.quick:
        cases = [
            ("2D 1024x1024", (1024, 1024), 1000, (12.0, 22.0)),
            ("3D 128^3", (128, 128, 128), 400, (9.0, 14.0)),
        ]
    rows = []
    for label, shape, n, radius in cases:
        t0 = time.perf_counter()
        gt, pred = make_pair(shape, n, radius, seed=0)
        print(f"{label}: generated in {time.perf_counter() - t0:.1f} s", flush=True)
        rows.append(run_case(label, gt, pred, args.repeat))
        r = rows[-1]
        print(
            f"  ours {r['ours']['time']:.3f} s, stardist {r['stardist']['time']:.3f} s, "
            f"max diff {r['diff']:.2e}",
            flush=True,
        )
        del gt, pred

    print()
    print(
        "| case | objects gt / pred | runner.metrics, full evaluation | stardist.matching, 9 thresholds "
        "| speed-up | peak extra memory ours / stardist | max abs diff, shared fields | identical |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        o, s = r["ours"], r["stardist"]
        print(
            f"| {r['case']} | {r['objects']} | {o['time']:.3f} s | {s['time']:.3f} s | "
            f"{s['time'] / o['time']:.1f}x | {o['peak_mib']:.0f} MiB / {s['peak_mib']:.0f} MiB | "
            f"{r['diff']:.1e} | {'yes' if r['diff'] <= 1e-9 else 'NO'} |"
        )


if __name__ == "__main__":
    main()

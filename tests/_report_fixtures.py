"""Results folders as ``runner predict --gt --measure`` writes them, built from synthetic blobs (no model)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from runner.io import write_image, write_labels
from runner.measure import measure_labels
from runner.metrics.report import write_evaluation
from runner.synthetic import random_blobs, render


def _prediction(gt: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """``gt`` less ``k`` objects (missed), plus up to ``k`` boxes in the background (false positives)."""
    pred = gt.copy()
    ids = np.unique(gt)[1:]
    pred[np.isin(pred, rng.choice(ids, size=min(k, len(ids)), replace=False))] = 0
    nxt = int(gt.max()) + 1
    for _ in range(k):
        corner = [int(rng.integers(0, s - 6)) for s in gt.shape]
        box = tuple(slice(c, c + 5) for c in corner)
        if not gt[box].any():
            pred[box] = nxt
            nxt += 1
    return pred


def make_results(
    root: Path,
    *,
    n: int = 3,
    shape: tuple[int, ...] = (96, 96),
    summary: bool = True,
    objects: int = 12,
    noise: float = 0.08,
) -> Path:
    """``root/results`` with instances/, measurements/, run_config.json and (``summary``) the evaluation;
    images in ``root/x``, ground truth in ``root/y``. Image ``i`` loses ``i`` objects and gains ``i`` false
    positives, so the worst image is the last one."""
    rng = np.random.default_rng(0)
    out, xdir, ydir = root / "results", root / "x", root / "y"
    for d in (out / "instances", out / "measurements", xdir, ydir):
        d.mkdir(parents=True)
    items = []
    for i in range(n):
        name = f"img{i:02d}"
        gt = random_blobs(shape, objects, radius=(5.0, 9.0), seed=i)
        pred = _prediction(gt, i, rng)
        image = render(gt, seed=i, noise=noise)
        write_image(xdir / f"{name}.tif", image[None])
        write_labels(ydir / f"{name}.tif", gt)
        write_labels(out / "instances" / f"{name}.tif", pred)
        measure_labels(pred, image=image[None]).to_csv(out / "measurements" / f"{name}.csv")
        items.append((name, gt, pred))
    if summary:
        write_evaluation(items, out, associations=False)
    config = {
        "runner_version": "0.1.0",
        "package": {
            "source": "model.zip",
            "name": "synthetic_model",
            "format_version": "0.5.4",
            "weight_formats": ["onnx", "torchscript"],
            "targets": "BCD",
        },
        "weights": "onnx",
        "device": "cpu",
        "tiling": {"tile": [96, 96], "batch_size": 1, "margin": [16, 16], "tiles_last_image": 1},
        "postprocessing": {
            "name": "watershed_bcd",
            "params": {"th_foreground": 0.6, "min_size": 20},
            "filters": [],
        },
        "options": {"tta": False},
        "inputs": {f"img{i:02d}": {"raw": str(xdir / f"img{i:02d}.tif")} for i in range(n)},
        "gt": str(ydir) if summary else None,
        "done": [f"img{i:02d}" for i in range(n)],
        "failures": {},
        "seconds": 1.5,
    }
    (out / "run_config.json").write_text(json.dumps(config))
    return out

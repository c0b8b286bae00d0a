"""Dataset aggregation of :class:`~runner.metrics.evaluate.ImageMetrics`, both ways, into the ``summary.json``
dict.

* ``pooled``: every image's objects counted together - TP/FP/FN and matched-score sums are added over images
  first, then the ratios are taken; AJI/AJI+/foreground IoU divide summed pixel counts; COCO mAP ranks all
  detections of all images together (as pycocotools does for a dataset); split/merge counts are totals.
* ``per_image_mean``: each metric is computed per image and then averaged (every image weighs the same);
  TP/FP/FN and split/merge counts are still totals.

``summary["pooled"]["per_threshold"][i]["accuracy"]`` is the pooled DSB2018 "AP" at the i-th threshold.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from runner.errors import UserError
from runner.metrics.aji import PixelCounts
from runner.metrics.coco import coco_map
from runner.metrics.evaluate import AVAP_05, AVAP_10, MEAN_IMAGE_FIELDS, ImageMetrics, threshold_key
from runner.metrics.matching import pooled_stats
from runner.metrics.names import COUNT_FIELDS, MATCHING_FIELDS, SUMMARY_FIELDS


def _pooled_counts(counts: list[PixelCounts | None]) -> float:
    inter = sum(c.intersection for c in counts if c is not None)
    union = sum(c.union for c in counts if c is not None)
    return PixelCounts(inter, union).value


def summarize(images: Sequence[ImageMetrics]) -> dict:
    """Aggregate per-image metrics into the ``summary.json`` structure (see the module docstring).

    All images must have been evaluated at the same thresholds with the same criterion.
    """
    images = list(images)
    if not images:
        raise UserError("no images to summarise")
    thresholds = images[0].thresholds
    for im in images[1:]:
        if [threshold_key(t) for t in im.thresholds] != [
            threshold_key(t) for t in thresholds
        ] or im.criterion != images[0].criterion:
            raise ValueError(f"image {im.name!r} was evaluated with other thresholds or another criterion")
    pooled_at = {
        threshold_key(t): pooled_stats([im.at(t) for im in images], t) for t in (*thresholds, *AVAP_05)
    }
    pooled = {
        "per_threshold": [
            {k: _plain(getattr(pooled_at[threshold_key(t)], k)) for k in SUMMARY_FIELDS} for t in thresholds
        ],
        "av_ap_50_95_10": float(np.mean([pooled_at[threshold_key(t)].accuracy for t in AVAP_10])),
        "av_ap_50_95_05": float(np.mean([pooled_at[threshold_key(t)].accuracy for t in AVAP_05])),
        "aji": _pooled_counts([im.aji_counts for im in images]),
        "aji_plus": _pooled_counts([im.aji_plus_counts for im in images]),
        "coco_map": coco_map([im.coco for im in images if im.coco is not None]),
        "foreground_iou": _pooled_counts([im.foreground_counts for im in images]),
        "n_splits": int(sum(im.n_splits for im in images)),
        "n_merges": int(sum(im.n_merges for im in images)),
    }
    mean_rows = []
    for i, t in enumerate(thresholds):
        stats = [im.per_threshold[i] for im in images]
        row: dict[str, Any] = {"iou": float(t)}
        row.update({k: sum(getattr(s, k) for s in stats) for k in COUNT_FIELDS})
        row.update({k: float(np.mean([getattr(s, k) for s in stats])) for k in MATCHING_FIELDS})
        mean_rows.append({k: row[k] for k in SUMMARY_FIELDS})
    per_image_mean: dict[str, Any] = {"per_threshold": mean_rows}
    per_image_mean.update({k: float(np.mean([getattr(im, k) for im in images])) for k in MEAN_IMAGE_FIELDS})
    per_image_mean["n_splits"] = pooled["n_splits"]
    per_image_mean["n_merges"] = pooled["n_merges"]
    return {
        "n_images": len(images),
        "criterion": images[0].criterion,
        "pooled": pooled,
        "per_image_mean": per_image_mean,
    }


def _plain(value):
    return int(value) if isinstance(value, (int, np.integer)) else float(value)

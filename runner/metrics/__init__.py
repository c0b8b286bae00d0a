"""Instance-segmentation metrics for 2D/3D label images and overlapping-instance stacks.

* :func:`evaluate_image` - one image: matching at IoU thresholds (TP/FP/FN, precision, recall, accuracy =
  TP/(TP+FP+FN) (the DSB2018 / PatchPerPix "AP"), F1, panoptic quality with SQ and RQ, mean matched IoU, mean
  true score), avAP over [0.5:0.1:0.9] and [0.5:0.05:0.95], AJI and AJI+, COCO mask mAP, foreground IoU and
  split/merge counts -> :class:`ImageMetrics` (``.matches(t)`` gives the matched pairs and unmatched ids).
* :func:`summarize` - a dataset, pooled over images and as the mean of per-image values (``summary.json``).
* :mod:`runner.metrics.report` - :func:`~runner.metrics.report.write_evaluation` writes
  ``metrics_per_image.csv``, ``summary.json``, ``charts/accuracy_vs_iou.png`` and the associations (what
  ``runner evaluate`` writes).

The matching is StarDist's (optimal assignment maximising the matches at or above the threshold, ties broken
by the score) and reproduces ``stardist.matching.matching`` exactly, from a sparse overlap count. The
criterion is selectable (:data:`CRITERIA`: ``iou``, ``ior``, ``iop``, ``boundary_iou``).

COCO mAP uses 101 recall points and IoU 0.50:0.05:0.95 like pycocotools, but has **no 100-detection cap** by
default: nuclei images hold hundreds of objects (``coco_max_dets=100`` gives COCO's number).

Example
-------
>>> from runner.metrics import evaluate_image, summarize
>>> m = evaluate_image(gt, pred)                              # doctest: +SKIP
>>> m.at(0.5).accuracy, m.aji, m.matches(0.5).unmatched_gt   # doctest: +SKIP
>>> summarize([m1, m2])["pooled"]["per_threshold"][4]["f1"]   # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the names below, imported on first use (``import runner.metrics`` stays light)
    from runner.metrics.criteria import CRITERIA, Criterion, get_criterion, register_criterion
    from runner.metrics.evaluate import (
        AVAP_05,
        AVAP_10,
        DEFAULT_THRESHOLDS,
        EvaluationOptions,
        ImageMetrics,
        Matches,
        evaluate_image,
    )
    from runner.metrics.matching import ThresholdStats
    from runner.metrics.names import MATCHING_FIELDS, Metric, metric_name, parse_metric
    from runner.metrics.summary import summarize

_EXPORTS = {
    "CRITERIA": "runner.metrics.criteria",
    "Criterion": "runner.metrics.criteria",
    "get_criterion": "runner.metrics.criteria",
    "register_criterion": "runner.metrics.criteria",
    "AVAP_05": "runner.metrics.evaluate",
    "AVAP_10": "runner.metrics.evaluate",
    "DEFAULT_THRESHOLDS": "runner.metrics.evaluate",
    "EvaluationOptions": "runner.metrics.evaluate",
    "ImageMetrics": "runner.metrics.evaluate",
    "Matches": "runner.metrics.evaluate",
    "evaluate_image": "runner.metrics.evaluate",
    "ThresholdStats": "runner.metrics.matching",
    "MATCHING_FIELDS": "runner.metrics.names",
    "Metric": "runner.metrics.names",
    "metric_name": "runner.metrics.names",
    "parse_metric": "runner.metrics.names",
    "summarize": "runner.metrics.summary",
}

__all__ = [
    "AVAP_05",
    "AVAP_10",
    "CRITERIA",
    "DEFAULT_THRESHOLDS",
    "MATCHING_FIELDS",
    "Criterion",
    "EvaluationOptions",
    "ImageMetrics",
    "Matches",
    "Metric",
    "ThresholdStats",
    "evaluate_image",
    "get_criterion",
    "metric_name",
    "parse_metric",
    "register_criterion",
    "summarize",
]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'runner.metrics' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__

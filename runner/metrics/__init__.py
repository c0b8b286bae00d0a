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

__all__ = [
    "AVAP_05",
    "AVAP_10",
    "CRITERIA",
    "DEFAULT_THRESHOLDS",
    "Criterion",
    "EvaluationOptions",
    "ImageMetrics",
    "MATCHING_FIELDS",
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

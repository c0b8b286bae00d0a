"""COCO-style mask mAP, computed as ``pycocotools`` does, for label images.

Per IoU threshold t in 0.50:0.05:0.95 (``np.linspace(.5, .95, 10)``, pycocotools' exact values), detections
are taken in decreasing confidence and each is matched to the unmatched ground-truth object of highest score
``>= t``; the precision-recall curve is made monotone and read at 101 recall points; mAP is the mean over the
thresholds and recall points.

Differences from pycocotools' defaults, on purpose:

* **no 100-detection cap** by default (``max_dets=None``): nuclei images hold hundreds of objects, and the cap
  would silently drop the rest. Pass ``max_dets=100`` to reproduce COCO's number;
* label images carry no confidence, so unless scores are given every detection has the same score. Tied
  detections enter the precision-recall curve together (one point per distinct score); pycocotools would walk
  them one by one in file order. With IoU (whose matches above 0.5 are unique) the result then does not depend
  on the order of the ids. With distinct scores the two agree exactly;
* an image without ground-truth objects scores 0 (pycocotools reports -1, "undefined").

The score is the chosen matching criterion (mask IoU by default; with ``boundary_iou`` this is the Boundary AP
of Cheng et al. 2021).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

COCO_IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1)
RECALL_POINTS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1)


@dataclass
class CocoRecord:
    """What one image contributes to COCO AP: detections in processing order and whether each matched."""

    scores: np.ndarray
    """``(d,)`` float64 confidences, non-increasing."""
    matched: np.ndarray
    """``(10, d)`` bool: detection matched at each of :data:`COCO_IOU_THRESHOLDS`."""
    n_gt: int


@njit(cache=True, nogil=True)
def _greedy(order, indptr, gts, scores, n_gt, threshold):
    matched_gt = np.zeros(n_gt, np.bool_)
    tp = np.zeros(len(order), np.bool_)
    limit = min(threshold, 1 - 1e-10)
    for k in range(len(order)):
        d = order[k]
        best = -1
        best_score = limit
        for q in range(indptr[d], indptr[d + 1]):
            g = gts[q]
            if matched_gt[g] or scores[q] < best_score:
                continue
            best_score = scores[q]
            best = g
        if best >= 0:
            matched_gt[best] = True
            tp[k] = True
    return tp


def coco_record(
    rows: np.ndarray,
    cols: np.ndarray,
    score: np.ndarray,
    n_true: int,
    n_pred: int,
    *,
    confidence: np.ndarray | None = None,
    max_dets: int | None = None,
) -> CocoRecord:
    """Greedy COCO matching of one image at the ten IoU thresholds.

    Parameters
    ----------
    rows, cols, score : (k,) ndarray
        Ground-truth index, prediction index and criterion score (float64) of the overlapping pairs.
    n_true, n_pred : int
        Object counts.
    confidence : (n_pred,) ndarray, optional
        Detection confidences; all equal when None.
    max_dets : int, optional
        Keep only the ``max_dets`` most confident detections (COCO's cap is 100); None keeps all.
    """
    conf = np.ones(n_pred) if confidence is None else np.asarray(confidence, np.float64)
    order = np.argsort(-conf, kind="mergesort")
    if max_dets is not None:
        order = order[:max_dets]
    by_det = np.lexsort((rows, cols))
    indptr = np.zeros(n_pred + 1, np.int64)
    np.cumsum(np.bincount(cols, minlength=n_pred), out=indptr[1:])
    gts = rows[by_det].astype(np.int64)
    sc = score[by_det].astype(np.float64)
    matched = (
        np.stack(
            [_greedy(order.astype(np.int64), indptr, gts, sc, n_true, float(t)) for t in COCO_IOU_THRESHOLDS]
        )
        if len(order)
        else np.zeros((10, 0), bool)
    )
    return CocoRecord(scores=conf[order], matched=matched, n_gt=int(n_true))


def coco_map(records: list[CocoRecord]) -> float:
    """COCO mAP of one image (one record) or of a dataset (all detections of all records ranked together)."""
    n_gt = sum(r.n_gt for r in records)
    if n_gt == 0:
        return 0.0
    scores = np.concatenate([r.scores for r in records]) if records else np.zeros(0)
    matched = np.concatenate([r.matched for r in records], axis=1) if records else np.zeros((10, 0), bool)
    order = np.argsort(-scores, kind="mergesort")
    scores, matched = scores[order], matched[:, order]
    last_of_tie = np.r_[scores[1:] != scores[:-1], True] if len(scores) else np.zeros(0, bool)
    aps = []
    for tp in matched:
        tp_sum = np.cumsum(tp, dtype=np.float64)
        fp_sum = np.cumsum(~tp, dtype=np.float64)
        recall = (tp_sum / n_gt)[last_of_tie]
        precision = (tp_sum / (fp_sum + tp_sum))[last_of_tie]  # pycocotools adds 2e-16 to the denominator
        if len(precision) == 0:
            aps.append(0.0)
            continue
        precision = np.maximum.accumulate(precision[::-1])[::-1]
        idx = np.searchsorted(recall, RECALL_POINTS, side="left")
        q = np.where(idx < len(precision), precision[np.minimum(idx, len(precision) - 1)], 0.0)
        aps.append(float(q.mean()))
    return float(np.mean(aps))

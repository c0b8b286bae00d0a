"""Optimal one-to-one matching at a score threshold, and the detection statistics it gives.

The assignment is StarDist's (``stardist.matching.matching``): among all one-to-one assignments of
ground-truth to predicted objects it maximises the number of pairs whose score is at or above the threshold,
and among those the sum of the scores of *all* assigned pairs (cost ``-(s >= t) - s / (2 * min(n_true,
n_pred))``). We solve the same problem without the dense ``n_true x n_pred`` matrix:

1. candidate pairs are the overlapping pairs with ``s >= t``; a candidate whose two objects have no other
   candidate is in every optimal assignment (swapping it in adds one match) and is taken directly - with
   ``t > 0.5`` every candidate is such a pair, since IoU > 0.5 is unique;
2. what is left is split into connected components of the overlap graph (pairs with ``s > 0``, the objects of
   step 1 removed); components holding a conflicting candidate are solved exactly with
   :func:`scipy.optimize.linear_sum_assignment` on their small dense cost matrix (pairs that do not overlap
   cost 0, as in the dense problem); the others contain no candidate and add no match.

Scores are compared and summed in the same precision as StarDist (``float32`` by default, see
:class:`PairScores`), so every shared statistic is identical to StarDist's, not just close.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

_COUNT = {"role": "count", "summary": True}
_RATIO = {"role": "ratio", "summary": True}
_RATIO_DETAIL = {"role": "ratio"}


@dataclass
class PairScores:
    """Scores of the overlapping pairs of one image under one criterion (pairs with score 0 may be
    present)."""

    rows: np.ndarray
    """``(k,)`` int64 ground-truth index."""
    cols: np.ndarray
    """``(k,)`` int64 prediction index."""
    score: np.ndarray
    """``(k,)`` float64 exact score (intersection / union for IoU)."""
    work: np.ndarray
    """``(k,)`` the score in the working precision used to threshold and sum: float32 (StarDist) or
    float64."""
    n_true: int
    n_pred: int


@dataclass
class ThresholdStats:
    """Detection statistics at one threshold (ratios with a zero denominator are 0, as in StarDist)."""

    iou: float = field(metadata={"role": "threshold", "summary": True})
    """The threshold on the matching criterion (named ``iou`` as in ``summary.json``)."""
    tp: int = field(metadata=_COUNT)
    fp: int = field(metadata=_COUNT)
    fn: int = field(metadata=_COUNT)
    precision: float = field(metadata=_RATIO)
    recall: float = field(metadata=_RATIO)
    accuracy: float = field(metadata=_RATIO)
    """TP / (TP + FP + FN): the DSB2018 / PatchPerPix "average precision" at this threshold."""
    f1: float = field(metadata=_RATIO)
    panoptic_quality: float = field(metadata=_RATIO)
    """PQ = SQ * RQ (Kirillov et al. 2019)."""
    sq: float = field(metadata=_RATIO_DETAIL)
    """Segmentation quality: mean score of the matched pairs."""
    rq: float = field(metadata=_RATIO_DETAIL)
    """Recognition quality: TP / (TP + FP/2 + FN/2), equal to F1."""
    mean_matched_iou: float = field(metadata=_RATIO)
    """Mean score of the true-positive pairs (StarDist's ``mean_matched_score``)."""
    mean_true_score: float = field(metadata=_RATIO_DETAIL)
    """Sum of the true-positive scores over the number of ground-truth objects."""
    n_true: int = field(metadata={"role": "size"})
    n_pred: int = field(metadata={"role": "size"})
    sum_matched_iou: float = field(metadata={"role": "internal"})
    """Sum of the true-positive scores (for pooling over images)."""

    @classmethod
    def from_counts(
        cls,
        threshold: float,
        *,
        tp: int,
        n_true: int,
        n_pred: int,
        total: float,
        mean_true: float | None = None,
    ) -> ThresholdStats:
        """The statistics from the matched count and score sum (StarDist's formulas; a ratio with a zero
        denominator is 0). ``mean_true`` overrides ``total / n_true`` (a per-image value divides in the
        working precision, as StarDist does)."""
        fp, fn = n_pred - tp, n_true - tp
        mean_matched = _safe_divide(total, tp)
        f1 = _ratio(2 * tp, 2 * tp + fp + fn)
        return cls(
            iou=float(threshold),
            tp=tp,
            fp=fp,
            fn=fn,
            precision=_ratio(tp, tp + fp),
            recall=_ratio(tp, tp + fn),
            accuracy=_ratio(tp, tp + fp + fn),
            f1=f1,
            panoptic_quality=float(_safe_divide(total, tp + fp / 2 + fn / 2)),
            sq=float(mean_matched),
            rq=f1,
            mean_matched_iou=float(mean_matched),
            mean_true_score=float(_safe_divide(total, n_true) if mean_true is None else mean_true),
            n_true=n_true,
            n_pred=n_pred,
            sum_matched_iou=total,
        )


def _safe_divide(x, y, eps: float = 1e-10):
    return x / y if np.abs(y) > eps else 0.0


def _ratio(tp: int, denominator: float) -> float:
    return tp / denominator if tp > 0 else 0.0


def match(pairs: PairScores, threshold: float) -> np.ndarray:
    """Indices into ``pairs`` of the true-positive pairs at ``threshold``, sorted by ground-truth index."""
    if pairs.n_true == 0 or pairs.n_pred == 0:
        return np.zeros(0, np.int64)
    w = pairs.work
    cand = np.flatnonzero(w >= threshold)  # a Python float is compared in w's precision, as in StarDist
    if len(cand) == 0:
        return cand.astype(np.int64)
    r, c = pairs.rows[cand], pairs.cols[cand]
    deg_r = np.bincount(r, minlength=pairs.n_true)
    deg_c = np.bincount(c, minlength=pairs.n_pred)
    unique = (deg_r[r] == 1) & (deg_c[c] == 1)
    if unique.all():
        return cand[np.argsort(r, kind="stable")]
    forced = cand[unique]
    solved = _solve_conflicts(pairs, threshold, forced, cand[~unique])
    out = np.concatenate([forced, solved])
    return out[np.argsort(pairs.rows[out], kind="stable")]


def _solve_conflicts(
    pairs: PairScores, threshold: float, forced: np.ndarray, conflicted: np.ndarray
) -> np.ndarray:
    from scipy import sparse
    from scipy.sparse.csgraph import connected_components

    n, m = pairs.n_true, pairs.n_pred
    gone_r = np.zeros(n, bool)
    gone_c = np.zeros(m, bool)
    gone_r[pairs.rows[forced]] = True
    gone_c[pairs.cols[forced]] = True
    live = np.flatnonzero(~gone_r[pairs.rows] & ~gone_c[pairs.cols] & (pairs.work > 0))
    lr, lc = pairs.rows[live], pairs.cols[live]
    graph = sparse.coo_matrix((np.ones(len(live), np.int8), (lr, n + lc)), shape=(n + m, n + m))
    _, comp = connected_components(graph, directed=False)
    edge_comp = comp[lr]
    wanted = np.unique(comp[pairs.rows[conflicted]])
    order = np.argsort(edge_comp, kind="stable")
    bounds = np.searchsorted(edge_comp[order], np.stack([wanted, wanted + 1]))
    n_matched = min(n, m)
    chosen = []
    for start, stop in zip(bounds[0], bounds[1], strict=True):
        edges = live[order[start:stop]]
        chosen.append(_solve_component(pairs, edges, threshold, n_matched))
    return np.concatenate(chosen) if chosen else np.zeros(0, np.int64)


def _solve_component(pairs: PairScores, edges: np.ndarray, threshold: float, n_matched: int) -> np.ndarray:
    """Exact assignment on one component with StarDist's cost; returns the chosen pairs at/above threshold."""
    from scipy.optimize import linear_sum_assignment

    urows, li = np.unique(pairs.rows[edges], return_inverse=True)
    ucols, lj = np.unique(pairs.cols[edges], return_inverse=True)
    w = pairs.work[edges]
    cost = np.zeros((len(urows), len(ucols)))
    cost[li, lj] = -(w >= threshold).astype(float) - w / (2 * n_matched)
    index = np.full((len(urows), len(ucols)), -1, np.int64)
    index[li, lj] = edges
    ri, ci = linear_sum_assignment(cost)
    picked = index[ri, ci]
    picked = picked[picked >= 0]
    return picked[pairs.work[picked] >= threshold]


def threshold_stats(pairs: PairScores, tp_pairs: np.ndarray, threshold: float) -> ThresholdStats:
    """Statistics at ``threshold`` given the true-positive pairs from :func:`match` (StarDist's formulas)."""
    n_true, n_pred = pairs.n_true, pairs.n_pred
    # the sum is accumulated in the working precision; like StarDist, only mean_true_score divides in it
    total = np.sum(pairs.work[tp_pairs]) if min(n_true, n_pred) > 0 else 0.0
    return ThresholdStats.from_counts(
        threshold,
        tp=len(tp_pairs),
        n_true=n_true,
        n_pred=n_pred,
        total=float(total),
        mean_true=float(_safe_divide(total, n_true)),
    )


def pooled_stats(stats: list[ThresholdStats], threshold: float) -> ThresholdStats:
    """Stats of several images at one threshold, pooled: TP/FP/FN and score sums added first."""
    total = float(np.sum([s.sum_matched_iou for s in stats], dtype=np.float64)) if stats else 0.0
    return ThresholdStats.from_counts(
        threshold,
        tp=sum(s.tp for s in stats),
        n_true=sum(s.n_true for s in stats),
        n_pred=sum(s.n_pred for s in stats),
        total=total,
    )

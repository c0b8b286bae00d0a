"""Pixel-level aggregate scores: AJI, AJI+, foreground IoU, and split/merge counts.

* **AJI** (Kumar et al. 2017): every ground-truth object G is paired with the prediction S of highest IoU with
  it (a prediction may serve several objects; ties go to the lowest prediction id); C sums |G & S|, U sums
  |G | S|, plus |G| for objects overlapping no prediction and |S| for predictions never chosen. AJI = C / U.
* **AJI+** (Graham et al. 2019, HoVer-Net): the same with a one-to-one pairing that maximises the summed IoU,
  so an over-sized prediction is not counted several times.
* **foreground IoU**: Jaccard index of the binary foreground masks.
* **splits / merges**: a ground-truth object is *split* when at least two predictions each lie mostly inside
  it (at least ``fraction`` of the prediction's pixels); a prediction is a *merge* when at least two
  ground-truth objects each lie mostly inside it. Balanced counts mean neither over- nor under-segmentation
  dominates.

Ratios with a zero denominator are 0 (no objects anywhere), as for the matching statistics.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from runner.metrics.overlap import Overlap


@dataclass
class PixelCounts:
    """Numerator and denominator of a pixel-level ratio (kept so images can be pooled)."""

    intersection: float
    union: float

    @property
    def value(self) -> float:
        return float(self.intersection / self.union) if self.union > 0 else 0.0


def aji(ov: Overlap) -> PixelCounts:
    """Aggregated Jaccard Index counts (Kumar et al. 2017)."""
    total_union = float(ov.gt_sizes.sum() + ov.pred_sizes.sum())
    if len(ov.inter) == 0:
        return PixelCounts(0.0, total_union)
    iou = ov.inter / ov.union
    order = np.lexsort((ov.cols, -iou, ov.rows))  # per ground-truth object: best IoU first, then lowest id
    rows = ov.rows[order]
    first = order[np.r_[True, rows[1:] != rows[:-1]]]
    union = ov.union
    c = float(ov.inter[first].sum())
    u = float(union[first].sum())
    paired_gt = np.zeros(ov.n_true, bool)
    paired_gt[ov.rows[first]] = True
    used_pred = np.zeros(ov.n_pred, bool)
    used_pred[ov.cols[first]] = True
    u += float(ov.gt_sizes[~paired_gt].sum() + ov.pred_sizes[~used_pred].sum())
    return PixelCounts(c, u)


def aji_plus(ov: Overlap) -> PixelCounts:
    """AJI+ counts: one-to-one pairing of maximal summed IoU (sparse Jonker-Volgenant, dummy partners)."""
    total_union = float(ov.gt_sizes.sum() + ov.pred_sizes.sum())
    if len(ov.inter) == 0:
        return PixelCounts(0.0, total_union)
    pairs = _max_iou_pairing(ov)
    c = float(ov.inter[pairs].sum())
    u = float(ov.union[pairs].sum())
    paired_gt = np.zeros(ov.n_true, bool)
    paired_gt[ov.rows[pairs]] = True
    paired_pred = np.zeros(ov.n_pred, bool)
    paired_pred[ov.cols[pairs]] = True
    u += float(ov.gt_sizes[~paired_gt].sum() + ov.pred_sizes[~paired_pred].sum())
    return PixelCounts(c, u)


def _max_iou_pairing(ov: Overlap) -> np.ndarray:
    """Indices of the overlapping pairs in a one-to-one pairing that maximises the sum of IoU."""
    from scipy import sparse
    from scipy.sparse.csgraph import min_weight_full_bipartite_matching

    n, m = ov.n_true, ov.n_pred
    iou = ov.inter / ov.union
    # every ground-truth object also gets a private dummy partner (column m + i) for "unpaired"; all weights
    # are shifted by 2 so they are positive: each row is matched once, so the shift does not change the
    # optimum
    rows = np.concatenate([ov.rows, np.arange(n)])
    cols = np.concatenate([ov.cols, m + np.arange(n)])
    weights = np.concatenate([2.0 - iou, np.full(n, 2.0)])
    graph = sparse.csr_matrix((weights, (rows, cols)), shape=(n, m + n))
    _, col_of_row = min_weight_full_bipartite_matching(graph)
    real = np.flatnonzero(col_of_row < m)
    key = ov.rows.astype(np.int64) * (m + 1) + ov.cols
    wanted = real.astype(np.int64) * (m + 1) + col_of_row[real]
    return np.searchsorted(key, wanted)  # pairs are sorted by (row, col), so keys are sorted


def foreground_iou(ov: Overlap) -> PixelCounts:
    """Jaccard index of the foreground masks."""
    return PixelCounts(float(ov.fg_intersection), float(ov.fg_union))


def splits_and_merges(ov: Overlap, *, fraction: float = 0.5) -> tuple[int, int]:
    """``(n_splits, n_merges)``: over-segmented ground-truth objects and under-segmenting predictions."""
    inside_gt = ov.inter >= fraction * ov.pred_sizes[ov.cols]  # the prediction lies mostly in the gt object
    inside_pred = ov.inter >= fraction * ov.gt_sizes[ov.rows]  # the gt object lies mostly in the prediction
    per_gt = np.bincount(ov.rows[inside_gt], minlength=ov.n_true)
    per_pred = np.bincount(ov.cols[inside_pred], minlength=ov.n_pred)
    return int(np.count_nonzero(per_gt >= 2)), int(np.count_nonzero(per_pred >= 2))

"""Sparse overlap counts between ground-truth and predicted objects (no dense n x m matrix).

For label images one numba pass over the pixels counts, for every pair of objects that share pixels, the
number of shared pixels; for overlapping stacks (one object per plane) the count is a sparse matrix product.
Objects are indexed ``0..n-1`` in increasing id order (the order StarDist's ``relabel_sequential`` gives
them).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from runner.errors import UserError

# a lookup table indexed by label id is used when the largest id is at most this many times the pixel count
_LOOKUP_FACTOR = 4


@dataclass
class Overlap:
    """Pixels shared by ground-truth object ``rows[k]`` and predicted object ``cols[k]``: ``inter[k] > 0``.

    Pairs are sorted by ``(row, col)``; rows/cols index ``gt_ids``/``pred_ids`` (original ids, increasing).
    """

    gt_ids: np.ndarray
    """``(n,)`` int64 ids of the ground-truth objects (plane number + 1 for overlapping stacks)."""
    pred_ids: np.ndarray
    """``(m,)`` int64 ids of the predicted objects."""
    gt_sizes: np.ndarray
    """``(n,)`` int64 pixel counts."""
    pred_sizes: np.ndarray
    """``(m,)`` int64 pixel counts."""
    rows: np.ndarray
    """``(k,)`` int64 ground-truth index of each overlapping pair."""
    cols: np.ndarray
    """``(k,)`` int64 prediction index of each overlapping pair."""
    inter: np.ndarray
    """``(k,)`` int64 shared pixels of each pair."""
    fg_intersection: int = 0
    """Pixels in the foreground of both images."""
    fg_union: int = 0
    """Pixels in the foreground of either image."""

    @property
    def n_true(self) -> int:
        return len(self.gt_ids)

    @property
    def n_pred(self) -> int:
        return len(self.pred_ids)

    @property
    def union(self) -> np.ndarray:
        """``(k,)`` int64 pixels in either object of each pair."""
        return self.gt_sizes[self.rows] + self.pred_sizes[self.cols] - self.inter


# --------------------------------------------------------------------------------------------- label images


@njit(cache=True, nogil=True)
def _present(flat, size):
    seen = np.zeros(size, np.bool_)
    for i in range(flat.size):
        seen[flat[i]] = True
    return seen


@njit(cache=True, nogil=True)
def _count_pairs(g, p, gmap, pmap, n, m):
    """Sizes and sparse pair counts of two label images through id -> index lookup tables (index 0 = none)."""
    gsize = np.zeros(n + 1, np.int64)
    psize = np.zeros(m + 1, np.int64)
    per_row = np.zeros(n + 2, np.int64)
    fg_union = 0
    for i in range(g.size):
        gi = gmap[g[i]]
        pj = pmap[p[i]]
        gsize[gi] += 1
        psize[pj] += 1
        if gi > 0 or pj > 0:
            fg_union += 1
        if gi > 0 and pj > 0:
            per_row[gi + 1] += 1
    for r in range(1, n + 2):
        per_row[r] += per_row[r - 1]
    total = per_row[n + 1]
    buf = np.empty(total, np.int32)
    fill = per_row[:-1].copy()
    for i in range(g.size):
        gi = gmap[g[i]]
        if gi > 0:
            pj = pmap[p[i]]
            if pj > 0:
                buf[fill[gi]] = pj
                fill[gi] += 1
    acc = np.zeros(m + 1, np.int64)
    touched = np.empty(m + 1, np.int64)
    rows = np.empty(total, np.int64)
    cols = np.empty(total, np.int64)
    inter = np.empty(total, np.int64)
    k = 0
    for gi in range(1, n + 1):
        nt = 0
        for q in range(per_row[gi], per_row[gi + 1]):
            pj = buf[q]
            if acc[pj] == 0:
                touched[nt] = pj
                nt += 1
            acc[pj] += 1
        touched[:nt].sort()
        for t in range(nt):
            pj = touched[t]
            rows[k] = gi - 1
            cols[k] = pj - 1
            inter[k] = acc[pj]
            acc[pj] = 0
            k += 1
    return gsize[1:], psize[1:], rows[:k], cols[:k], inter[:k], total, fg_union


def id_lookup(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(ids, lookup)``: the sorted non-zero ids of ``labels`` and a table mapping id -> index + 1 (0:
    none)."""
    flat = labels.ravel()
    top = int(flat.max()) if flat.size else 0
    seen = _present(flat, top + 1)
    seen[0] = False
    ids = np.flatnonzero(seen).astype(np.int64)
    lookup = np.zeros(top + 1, np.int64)
    lookup[ids] = np.arange(1, len(ids) + 1)
    return ids, lookup


def _compact(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Labels whose largest id is small enough for a lookup table (renumbered when ids are huge and
    sparse)."""
    flat = labels.ravel()
    top = int(flat.max()) if flat.size else 0
    if top <= _LOOKUP_FACTOR * max(flat.size, 1024):
        return labels, None
    import fastremap

    seq, mapping = fastremap.renumber(np.ascontiguousarray(labels), preserve_zero=True, in_place=False)
    back = np.zeros(len(mapping) + 1, np.int64)
    for old, new in mapping.items():
        back[int(new)] = old
    return seq, back


def label_overlap(gt: np.ndarray, pred: np.ndarray) -> Overlap:
    """Sparse overlap of two label images of the same shape ``(Y, X)`` or ``(Z, Y, X)`` (0 = background)."""
    if gt.shape != pred.shape:
        raise UserError(f"ground truth has shape {gt.shape} but the prediction has shape {pred.shape}")
    g, g_back = _compact(gt)
    p, p_back = _compact(pred)
    gt_ids, gmap = id_lookup(g)
    pred_ids, pmap = id_lookup(p)
    # sort ids by their original value when they were renumbered
    gt_ids, gmap = _restore_order(gt_ids, gmap, g_back)
    pred_ids, pmap = _restore_order(pred_ids, pmap, p_back)
    gsize, psize, rows, cols, inter, total, fg_union = _count_pairs(
        g.ravel(), p.ravel(), gmap, pmap, len(gt_ids), len(pred_ids)
    )
    return Overlap(gt_ids, pred_ids, gsize, psize, rows, cols, inter, int(total), int(fg_union))


def _restore_order(ids: np.ndarray, lookup: np.ndarray, back: np.ndarray | None):
    if back is None:
        return ids, lookup
    original = back[ids]
    order = np.argsort(original, kind="stable")
    rank = np.zeros(len(ids) + 1, np.int64)
    rank[order + 1] = np.arange(1, len(ids) + 1)
    lookup = rank[lookup]
    return original[order], lookup


def band_overlap(gt_band: np.ndarray, pred_band: np.ndarray, base: Overlap) -> Overlap:
    """Overlap of boundary-band label images, indexed like ``base`` (the mask overlap of the same objects)."""
    gmap = _lookup_for(base.gt_ids, gt_band)
    pmap = _lookup_for(base.pred_ids, pred_band)
    gsize, psize, rows, cols, inter, total, fg_union = _count_pairs(
        gt_band.ravel(), pred_band.ravel(), gmap, pmap, base.n_true, base.n_pred
    )
    return Overlap(base.gt_ids, base.pred_ids, gsize, psize, rows, cols, inter, int(total), int(fg_union))


def _lookup_for(ids: np.ndarray, labels: np.ndarray) -> np.ndarray:
    top = int(labels.max()) if labels.size else 0
    if top > _LOOKUP_FACTOR * max(labels.size, 1024):
        raise UserError(
            "boundary_iou needs label ids no larger than a few times the pixel count",
            hint="relabel the images sequentially first",
        )
    lookup = np.zeros(max(top, int(ids.max()) if len(ids) else 0) + 1, np.int64)
    lookup[ids] = np.arange(1, len(ids) + 1)
    return lookup


# --------------------------------------------------------------------------------------------- stacks


def _stack_objects(stack: np.ndarray, what: str):
    """Sparse (objects x pixels) incidence of a stack ``(N, *spatial)`` with one object per plane."""
    from scipy import sparse

    planes = stack.reshape(len(stack), -1)
    nz_rows, nz_cols = np.nonzero(planes)
    if len(nz_rows):
        values = planes[nz_rows, nz_cols]
        lo = np.full(len(stack), np.iinfo(np.int64).max)
        hi = np.zeros(len(stack), np.int64)
        np.minimum.at(lo, nz_rows, values.astype(np.int64))
        np.maximum.at(hi, nz_rows, values.astype(np.int64))
        bad = np.flatnonzero((hi > 0) & (lo != hi))
        if len(bad):
            raise UserError(
                f"{what} plane {int(bad[0])} holds several ids",
                hint="an overlapping stack has one object per plane; use a plain label image otherwise",
            )
    sizes = np.bincount(nz_rows, minlength=len(stack)).astype(np.int64)
    keep = np.flatnonzero(sizes > 0)
    index = np.full(len(stack), -1, np.int64)
    index[keep] = np.arange(len(keep))
    matrix = sparse.csr_matrix(
        (np.ones(len(nz_rows), np.int64), (index[nz_rows], nz_cols)), shape=(len(keep), planes.shape[1])
    )
    return keep.astype(np.int64) + 1, sizes[keep], matrix


def _label_objects(labels: np.ndarray):
    """Sparse (objects x pixels) incidence of a label image; ids are the label ids."""
    from scipy import sparse

    flat = labels.ravel()
    nz = np.flatnonzero(flat)
    ids, inverse = np.unique(flat[nz], return_inverse=True)
    matrix = sparse.csr_matrix((np.ones(len(nz), np.int64), (inverse, nz)), shape=(len(ids), flat.size))
    return ids.astype(np.int64), np.bincount(inverse, minlength=len(ids)).astype(np.int64), matrix


def is_stack(arr: np.ndarray, other: np.ndarray) -> bool:
    """Whether ``arr`` is a stack (not a label image) beside ``other`` in :func:`stack_overlap`."""
    return arr.ndim >= other.ndim


def stack_overlap(gt: np.ndarray, pred: np.ndarray) -> Overlap:
    """Sparse overlap of overlapping-instance stacks ``(N, (Z,) Y, X)`` / ``(M, (Z,) Y, X)``.

    Each non-empty plane is one object whose id is its plane number + 1; empty planes are not objects. One
    side may instead be a plain label image ``((Z,) Y, X)`` (one dimension less): its objects keep their ids.
    """
    g_stack, p_stack = is_stack(gt, pred), is_stack(pred, gt)
    g_shape = gt.shape[1:] if g_stack else gt.shape
    p_shape = pred.shape[1:] if p_stack else pred.shape
    if g_shape != p_shape:
        raise UserError(f"ground-truth objects have shape {g_shape} but predicted objects {p_shape}")
    gt_ids, gsize, a = _stack_objects(gt, "ground-truth") if g_stack else _label_objects(gt)
    pred_ids, psize, b = _stack_objects(pred, "prediction") if p_stack else _label_objects(pred)
    prod = (a @ b.T).tocoo()
    order = np.lexsort((prod.col, prod.row))
    rows = prod.row[order].astype(np.int64)
    cols = prod.col[order].astype(np.int64)
    inter = prod.data[order].astype(np.int64)
    keep = inter > 0
    fg_gt = np.asarray(a.sum(axis=0)).ravel() > 0
    fg_pred = np.asarray(b.sum(axis=0)).ravel() > 0
    return Overlap(
        gt_ids,
        pred_ids,
        gsize,
        psize,
        rows[keep],
        cols[keep],
        inter[keep],
        int(np.count_nonzero(fg_gt & fg_pred)),
        int(np.count_nonzero(fg_gt | fg_pred)),
    )

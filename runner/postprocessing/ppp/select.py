"""PatchPerPix patch selection: greedy foreground cover by score, then thin-out (Sec. 2.1)."""

from __future__ import annotations

import numpy as np
from numba import njit

from runner.postprocessing.ppp.consensus import PatchSet, claim


@njit(cache=True)
def _cover(order, val, cpos, fidx, offs, threshold, n_f):
    """Pre-selection: walk patches by decreasing score, keep those covering new foreground."""
    k_all = val.shape[1]
    coverable = np.zeros(n_f, np.bool_)
    for c in order:
        for k in range(k_all):
            if claim(val[c, k]) > threshold:
                coverable[fidx[cpos[c] + offs[k]]] = True
    remaining = coverable.sum()
    covered = np.zeros(n_f, np.bool_)
    pre = np.empty(len(order), np.int64)
    n_pre = 0
    for c in order:
        if remaining == 0:
            break
        new = 0
        for k in range(k_all):
            if claim(val[c, k]) > threshold:
                i = fidx[cpos[c] + offs[k]]
                if not covered[i]:
                    covered[i] = True
                    new += 1
        if new:
            pre[n_pre] = c
            n_pre += 1
            remaining -= new
    return pre[:n_pre]


@njit(cache=True)
def _thin_out(pre, val, cpos, fidx, offs, threshold, n_f):
    """Greedy max-cover over the pre-selection: take the patch covering the most uncovered foreground next."""
    k_all = val.shape[1]
    m = len(pre)
    gain = np.zeros(m, np.int64)
    count = np.zeros(n_f + 1, np.int64)
    for j in range(m):
        for k in range(k_all):
            if claim(val[pre[j], k]) > threshold:
                count[fidx[cpos[pre[j]] + offs[k]] + 1] += 1
                gain[j] += 1
    ptr = np.cumsum(count)
    members = np.empty(ptr[-1], np.int64)
    fill = ptr[:-1].copy()
    for j in range(m):
        for k in range(k_all):
            if claim(val[pre[j], k]) > threshold:
                i = fidx[cpos[pre[j]] + offs[k]]
                members[fill[i]] = j
                fill[i] += 1
    covered = np.zeros(n_f, np.bool_)
    chosen = np.empty(m, np.int64)
    n_chosen = 0
    while True:
        best = np.argmax(gain)  # first maximum: ties go to the higher score
        if gain[best] <= 0:
            break
        chosen[n_chosen] = pre[best]
        n_chosen += 1
        for k in range(k_all):
            if claim(val[pre[best], k]) > threshold:
                i = fidx[cpos[pre[best]] + offs[k]]
                if not covered[i]:
                    covered[i] = True
                    for q in range(ptr[i], ptr[i + 1]):
                        gain[members[q]] -= 1
    return chosen[:n_chosen]


def rank(score: np.ndarray) -> np.ndarray:
    """Patch indices by decreasing score (patches without foreground left out).

    Scores are compared to 1e-6, so that ties break by pixel order whatever the summation order was.
    """
    ok = np.flatnonzero(np.isfinite(score))
    key = np.round(score[ok], 6)
    return ok[np.lexsort((ok, -key))]


def select_patches(ps: PatchSet, score: np.ndarray, *, thin_out: bool = True) -> np.ndarray:
    """Patches (centre indices) covering the whole coverable foreground: set cover by score, then thin-out.

    Returns
    -------
    (S,) ndarray of int64
        Selected centre indices, in selection order.
    """
    args = (ps.val, ps.cpos, ps.fidx, ps.offsets, np.float32(ps.threshold), len(ps.fpos))
    pre = _cover(rank(score), *args)
    if not thin_out or len(pre) == 0:
        return pre
    return _thin_out(pre, *args)

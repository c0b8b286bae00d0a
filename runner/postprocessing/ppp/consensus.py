"""PatchPerPix consensus affinities (Eq. 3-4) and patch scores (Eq. 5), sparse and fused, with numba.

Storage
-------
Consensus affinities exist only for foreground pixel pairs ``(y, y + d)`` that fit in one window, ``d`` in the
difference set ``P - P`` (``2p - 1`` per axis). Each unordered pair is stored once, at its first pixel in
raster order, so a row of ``aff`` ``(N_F, D)`` holds the "positive" half of the difference set in raster
order, ``d = 0`` first (``D = (prod(2p - 1) + 1) / 2``: 1201 for 25x25, 2457 for 9x9x9). Values are int16
fixed point (``aff * AFF_SCALE``); :data:`UNCOVERED` marks pairs no informative patch covers (``Z_aff = 0``).
Memory: ``2 D`` bytes per foreground pixel (2.4 kB for 25x25), against ``8 prod(2p - 1)`` bytes per image
pixel (19 kB) for a dense consensus array.

Algorithm
---------
One parallel pass over the foreground pixels ``y`` (each thread owns its rows and its score accumulators):

1. Eq. 3-4: every patch ``x`` containing ``y`` (``y = x + o1``) votes on the pairs ``(y, x + o2)``,
   ``o2 >= o1``. The votes go to a per-thread buffer split by the column ``ix1`` of ``o1``: inside one split
   the difference ``dx = ix2 - ix1`` spans only ``px`` values, so a whole plane of the patch maps onto one
   contiguous run of the buffer and the inner loops are long, branch-free and vectorised by numba. Only the
   plane ranges holding domain (or, when ``y`` is not in ``fg(p_x)``, foreground) slots are visited.
2. The splits are summed into the row of ``y``, divided by the counts and stored.
3. Eq. 5: the same patches receive their contributions from that row while it is hot in cache (it is spread
   back into the split layout first).

Cost: about ``2 |patch ∩ F| K / 2`` multiply-adds per patch plus ``3 D px`` per pixel for the splits.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

from runner.postprocessing.ppp.patches import (  # noqa: F401  (re-exported for callers of this module)
    OVERLAP_BASE,
    Q_LEVELS,
    Q_NONE,
    PatchSet,
    as_3d,
    claim,
    prepare,
    q_thresholds,
    quantized,
    slot_offsets,
)

AFF_SCALE = 30000.0
"""Fixed-point scale of the stored consensus affinities (``aff`` in ``[-1, 1]``)."""
UNCOVERED = np.int16(-32768)
"""Stored affinity of a pixel pair no informative patch covers."""


@njit(cache=True, inline="always")
def _around(p, cidx, val, shape, patch, out):
    """Fill ``out`` with ``(centre index, iz1, iy1, ix1)`` of the patches whose domain holds pixel ``p``."""
    zs, ys, xs = shape
    pz, py, px = patch
    z0, y0, x0 = p // (ys * xs), (p // xs) % ys, p % xs
    n = 0
    for iz1 in range(pz):
        xz = z0 - iz1 + pz // 2
        if xz < 0 or xz >= zs:
            continue
        for iy1 in range(py):
            xy = y0 - iy1 + py // 2
            if xy < 0 or xy >= ys:
                continue
            for ix1 in range(px):
                xx = x0 - ix1 + px // 2
                if xx < 0 or xx >= xs:
                    continue
                c = cidx[(xz * ys + xy) * xs + xx]
                if c >= 0 and val[c, (iz1 * py + iy1) * px + ix1] != Q_NONE:  # not on an overlap pixel
                    out[n, 0], out[n, 1], out[n, 2], out[n, 3] = c, iz1, iy1, ix1
                    n += 1
    return n


@njit(parallel=True, fastmath=True, cache=True)
def _consensus_scores(qval, spans, cidx, fpos, shape, patch, q_fg, q_bg, aff, bounds, c_lo, buf_off, buf):
    pz, py, px = patch
    plane = py * px
    ly2, lx2 = 2 * py - 1, 2 * px - 1
    n_rows = pz * ly2 - py + 1  # rows (dz, dy) of the positive half of the difference grid
    one = np.float32(1.0)
    zero = np.float32(0.0)
    inv = np.float32(1.0) / np.float32(Q_LEVELS)
    none = np.uint8(Q_NONE)
    val_flat = qval.reshape(-1)
    k_all = qval.shape[1]
    part_len = n_rows * px

    for chunk in prange(len(bounds) - 1):
        part_num = np.zeros((px, n_rows * px), np.float32)  # split by ix1: [row * px + ix2]
        part_cnt = np.zeros((px, n_rows * px), np.float32)
        part_aff = np.zeros((px, n_rows * px), np.float32)
        full_num = np.zeros(n_rows * lx2, np.float32)  # row * (2 px - 1) + dx + px - 1
        full_cnt = np.zeros(n_rows * lx2, np.float32)
        around = np.empty((pz * plane, 4), np.int64)
        num_flat = part_num.reshape(-1)
        cnt_flat = part_cnt.reshape(-1)
        aff_flat = part_aff.reshape(-1)
        # this chunk's score accumulators: the patches around its pixels are a contiguous range of centres
        scores = buf[buf_off[chunk] : buf_off[chunk + 1]]
        for i in range(bounds[chunk], bounds[chunk + 1]):
            n_x = _around(fpos[i], cidx, qval, shape, patch, around)
            # 1. Eq. 3-4 votes; slot s of plane iz2 goes to part[ix1, s + off]
            for j_x in range(n_x):
                c, iz1, iy1, ix1 = around[j_x, 0], around[j_x, 1], around[j_x, 2], around[j_x, 3]
                s1 = (iz1 * py + iy1) * px + ix1
                qa = qval[c, s1]
                a = np.float32(qa) * inv
                a_fg = qa > q_fg
                # a fg: + a*b (b fg) - a*(1-b) (b bg); a bg: -(1-a)*b (b fg); a pair counts if one end is fg
                c_fg = a if a_fg else (-(one - a) if qa < q_bg else zero)
                c_bg = -a
                k = 0 if a_fg else 2  # a fg: every domain slot matters; else only foreground slots
                for iz2 in range(iz1, pz):
                    first = max(s1 if iz2 == iz1 else iz2 * plane, spans[c, iz2, k])
                    last = spans[c, iz2, k + 1]
                    if first >= last:
                        continue
                    off = (iz2 - iz1) * ly2 * px - iz2 * plane - iy1 * px
                    # unsigned flat indices: no wrap-around checks and no array views, so numba vectorises
                    si = np.uint64(c * k_all + first)
                    di = np.uint64(ix1 * part_len + first + off)
                    if a_fg:
                        for j in range(last - first):
                            qb = val_flat[si + np.uint64(j)]
                            b = np.float32(qb) * inv
                            d = di + np.uint64(j)
                            b_fg = (qb > q_fg) & (qb != none)
                            num_flat[d] += c_fg * b if b_fg else (c_bg * (one - b) if qb < q_bg else zero)
                            cnt_flat[d] += one if qb != none else zero
                    else:
                        for j in range(last - first):
                            qb = val_flat[si + np.uint64(j)]
                            d = di + np.uint64(j)
                            b_fg = (qb > q_fg) & (qb != none)
                            num_flat[d] += c_fg * (np.float32(qb) * inv) if b_fg else zero
                            cnt_flat[d] += one if b_fg else zero
            # 2. sum the splits (dx = ix2 - ix1), divide, store
            for r in range(n_rows):
                for ix1 in range(px):
                    pn = part_num[ix1, r * px : (r + 1) * px]
                    pc = part_cnt[ix1, r * px : (r + 1) * px]
                    fn = full_num[r * lx2 + px - 1 - ix1 : r * lx2 + lx2 - ix1]
                    fc = full_cnt[r * lx2 + px - 1 - ix1 : r * lx2 + lx2 - ix1]
                    for j in range(px):
                        fn[j] += pn[j]
                        fc[j] += pc[j]
                        pn[j] = 0
                        pc[j] = 0
            for f in range(px - 1, n_rows * lx2):
                if full_cnt[f] > 0:
                    q = full_num[f] / full_cnt[f]
                    aff[i, f - px + 1] = np.int16(np.round(q * AFF_SCALE))
                    full_num[f] = q
                else:
                    aff[i, f - px + 1] = UNCOVERED
                    full_num[f] = 0
                full_cnt[f] = 0
            for r in range(n_rows):
                for ix1 in range(px):
                    pa = part_aff[ix1, r * px : (r + 1) * px]
                    fa = full_num[r * lx2 + px - 1 - ix1 : r * lx2 + lx2 - ix1]
                    for j in range(px):
                        pa[j] = fa[j]
            full_num[:] = 0
            # 3. Eq. 5: + aff for fg-fg pairs and - aff for fg-bg pairs (y first)
            for j_x in range(n_x):
                c, iz1, iy1, ix1 = around[j_x, 0], around[j_x, 1], around[j_x, 2], around[j_x, 3]
                s1 = (iz1 * py + iy1) * px + ix1
                qa = qval[c, s1]
                a_fg = qa > q_fg
                if not a_fg and qa >= q_bg:
                    continue
                k = 0 if a_fg else 2
                acc = zero
                for iz2 in range(iz1, pz):
                    first = max(s1 + 1 if iz2 == iz1 else iz2 * plane, spans[c, iz2, k])
                    last = spans[c, iz2, k + 1]
                    if first >= last:
                        continue
                    off = (iz2 - iz1) * ly2 * px - iz2 * plane - iy1 * px
                    si = np.uint64(c * k_all + first)
                    di = np.uint64(ix1 * part_len + first + off)
                    if a_fg:
                        for j in range(last - first):
                            qb = val_flat[si + np.uint64(j)]
                            g = aff_flat[di + np.uint64(j)]
                            acc += g if ((qb > q_fg) & (qb != none)) else (-g if qb < q_bg else zero)
                    else:
                        for j in range(last - first):
                            qb = val_flat[si + np.uint64(j)]
                            acc -= aff_flat[di + np.uint64(j)] if ((qb > q_fg) & (qb != none)) else zero
                scores[c - c_lo[chunk]] += acc


def consensus_and_scores(ps: PatchSet) -> tuple[np.ndarray, np.ndarray]:
    """Consensus affinities (Eq. 3-4) of all foreground pixel pairs in patch range and patch scores (Eq. 5).

    Returns
    -------
    aff : (N_F, D) ndarray of int16
        Stored consensus affinities (see the module docstring for the layout).
    score : (N_C,) ndarray of float64
        Eq. 5 for every patch with a non-empty foreground, ``-inf`` for the others. A patch whose foreground
        is its only in-domain pixel (no pair) scores 0.
    """
    aff = np.empty((len(ps.fpos), ps.n_diff), np.int16)
    # many small chunks handed out dynamically (robust to busy cores); each chunk accumulates the scores of
    # the contiguous range of patch centres within reach of its pixels, summed up afterwards
    n_f = len(ps.fpos)
    n_chunks = min(max(1, n_f // 64), 64 * numba.get_num_threads())
    bounds = np.linspace(0, n_f, n_chunks + 1).astype(np.int64)
    reach = int(np.abs(ps.offsets).max()) if n_f else 0
    c_lo = np.searchsorted(ps.cpos, ps.fpos[bounds[:-1]] - reach) if n_f else np.zeros(0, np.int64)
    c_hi = np.searchsorted(ps.cpos, ps.fpos[bounds[1:] - 1] + reach, side="right") if n_f else c_lo
    buf_off = np.concatenate([[0], np.cumsum(c_hi - c_lo)]).astype(np.int64)
    buf = np.zeros(int(buf_off[-1]), np.float64)
    q_fg, q_bg = q_thresholds(ps.threshold)
    args = (
        ps.qval,
        ps.spans,
        ps.cidx,
        ps.fpos,
        np.asarray(ps.shape, np.int64),
        np.asarray(ps.patch, np.int64),
        np.uint8(q_fg),
        np.uint8(q_bg),
        aff,
        bounds,
        c_lo.astype(np.int64),
        buf_off,
        buf,
    )
    if n_f:
        with numba.parallel_chunksize(1):
            _consensus_scores(*args)
    owner = np.concatenate(
        [np.arange(lo, hi) for lo, hi in zip(c_lo, c_hi, strict=True)] or [np.zeros(0, int)]
    )
    raw = np.bincount(owner, weights=buf, minlength=len(ps.cpos))
    nv = ps.n_valid.astype(np.float64)
    nb = nv - ps.n_fg
    pairs = nv * (nv - 1) / 2 - nb * (nb - 1) / 2
    score = np.where(pairs > 0, raw / np.maximum(pairs, 1), 0.0)
    score[ps.n_fg == 0] = -np.inf
    return aff, score

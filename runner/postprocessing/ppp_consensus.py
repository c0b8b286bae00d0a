"""PatchPerPix consensus affinities (Eq. 3-4) and patch scores (Eq. 5), sparse and fused, with numba.

Data layout
-----------
Everything works on the image foreground ``F`` only (the paper's ``patch_sparse``: a patch sees the pixels of
its window that lie in ``F``). 2D data is handled as 3D with one plane.

- ``val`` ``(N_C, K)`` float32: the patch of each patch centre (foreground pixels that are not overlap), offset
  ``k`` in raster order; ``-1`` marks offsets outside the image or outside ``F`` (not part of the patch).
- Consensus affinities exist only for pixel pairs ``(y, y + d)`` that fit in one window, ``d`` in the
  difference set ``P - P`` (``(2p - 1)`` per axis). Each unordered pair is stored once, at its first pixel in
  raster order, so a row of ``aff`` ``(N_F, D)`` holds the "positive" half of the difference set, ``d = 0``
  first (``D = (prod(2p - 1) + 1) / 2``: 1201 for 25x25, 2457 for 9x9x9). Values are int16 fixed point
  (``aff * AFF_SCALE``); :data:`UNCOVERED` marks pairs no informative patch covers (``Z_aff = 0``).

Algorithm
---------
One parallel pass over the foreground pixels ``y``. For each ``y`` the sums of Eq. 3 and the counts of Eq. 4 of
all pairs ``(y, y + d)`` are gathered from every patch containing ``y`` into a per-thread row (the row loops run
over contiguous offsets, so numba vectorises them), divided, written to ``aff``, and then the same patches
receive their Eq. 5 contributions from that row while it is hot in cache. No dense consensus array over the
whole image is ever allocated and each thread writes only its own rows and its own score accumulators. Cost:
``sum over patches of |patch ∩ F| * K`` multiply-adds; memory ``2 * D`` bytes per foreground pixel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
from numba import njit, prange

AFF_SCALE = 30000.0
"""Fixed-point scale of the stored consensus affinities (``aff`` in ``[-1, 1]``)."""
UNCOVERED = np.int16(-32768)
"""Stored affinity of a pixel pair no informative patch covers."""


@dataclass
class PatchSet:
    """Foreground, patch centres and their patches, ready for the kernels.

    Attributes
    ----------
    shape : tuple of int
        ``(Z, Y, X)`` (``Z = 1`` for 2D).
    patch : tuple of int
        ``(pz, py, px)`` window (``pz = 1`` for 2D).
    threshold : float
        Patch foreground threshold ``t`` (Eq. 1); background is ``p < 1 - t`` (Eq. 2).
    fpos : (N_F,) ndarray of int64
        Flat positions of the foreground pixels, increasing.
    fidx : (Z * Y * X,) ndarray of int32
        Foreground index of each pixel, ``-1`` outside ``F``.
    cpos : (N_C,) ndarray of int64
        Flat positions of the patch centres (foreground minus overlap).
    cidx : (Z * Y * X,) ndarray of int32
        Centre index of each pixel, ``-1`` elsewhere.
    val : (N_C, K) ndarray of float32
        Patch values, ``-1`` outside the patch's sparse domain.
    n_valid, n_fg : (N_C,) ndarray of int32
        Number of offsets in the domain and in the patch foreground ``fg(p_x)``.
    """

    shape: tuple[int, int, int]
    patch: tuple[int, int, int]
    threshold: float
    fpos: np.ndarray
    fidx: np.ndarray
    cpos: np.ndarray
    cidx: np.ndarray
    val: np.ndarray
    n_valid: np.ndarray
    n_fg: np.ndarray

    @property
    def n_diff(self) -> int:
        """Stored differences per pixel (positive half of ``P - P``, zero included)."""
        pz, py, px = self.patch
        return ((2 * pz - 1) * (2 * py - 1) * (2 * px - 1) + 1) // 2


def as_3d(arr: np.ndarray, spatial_ndim: int) -> np.ndarray:
    """View a ``(..., Y, X)`` array as ``(..., 1, Y, X)`` when ``spatial_ndim == 2``."""
    return arr[..., np.newaxis, :, :] if spatial_ndim == 2 else arr


@njit(parallel=True, cache=True)
def _gather_patches(patches, cpos, fmask, patch, threshold):
    n_c = cpos.shape[0]
    _, zs, ys, xs = patches.shape
    pz, py, px = patch
    k_all = pz * py * px
    val = np.empty((n_c, k_all), np.float32)
    n_valid = np.zeros(n_c, np.int32)
    n_fg = np.zeros(n_c, np.int32)
    for c in prange(n_c):
        p = cpos[c]
        z0, y0, x0 = p // (ys * xs), (p // xs) % ys, p % xs
        nv, nf = 0, 0
        for k in range(k_all):
            z = z0 + k // (py * px) - pz // 2
            y = y0 + (k // px) % py - py // 2
            x = x0 + k % px - px // 2
            v = np.float32(-1.0)
            if 0 <= z < zs and 0 <= y < ys and 0 <= x < xs and fmask[z, y, x]:
                v = min(max(patches[k, z, y, x], np.float32(0.0)), np.float32(1.0))
                nv += 1
                if v > threshold:
                    nf += 1
            val[c, k] = v
        n_valid[c] = nv
        n_fg[c] = nf
    return val, n_valid, n_fg


def prepare(
    patches: np.ndarray, fmask: np.ndarray, centres: np.ndarray, threshold: float, patch: tuple[int, int, int]
) -> PatchSet:
    """Collect the patches of all centres.

    Parameters
    ----------
    patches : (K, Z, Y, X) ndarray of float32
        Patch channels of the prediction (raster offset order, ``K = pz * py * px``).
    fmask : (Z, Y, X) ndarray of bool
        Image foreground ``F``.
    centres : (Z, Y, X) ndarray of bool
        Pixels whose patches take part (``F`` minus predicted overlap).
    threshold : float
        ``t`` of Eq. 1, in ``[0.5, 1)``.
    patch : tuple of int
        ``(pz, py, px)`` window.
    """
    fpos = np.flatnonzero(fmask).astype(np.int64)
    fidx = np.full(fmask.size, -1, np.int32)
    fidx[fpos] = np.arange(len(fpos), dtype=np.int32)
    cpos = np.flatnonzero(centres & fmask).astype(np.int64)
    cidx = np.full(fmask.size, -1, np.int32)
    cidx[cpos] = np.arange(len(cpos), dtype=np.int32)
    val, n_valid, n_fg = _gather_patches(np.ascontiguousarray(patches, np.float32), cpos,
                                         np.ascontiguousarray(fmask), np.asarray(patch, np.int64),
                                         np.float32(threshold))
    return PatchSet(tuple(int(s) for s in fmask.shape), tuple(int(p) for p in patch), float(threshold),
                    fpos, fidx, cpos, cidx, val, n_valid, n_fg)


@njit(parallel=True, fastmath=True, cache=True)
def _consensus_scores(val, cidx, fpos, shape, patch, threshold, aff, n_chunks):
    zs, ys, xs = shape
    pz, py, px = patch
    hz, hy, hx = pz // 2, py // 2, px // 2
    k_all = pz * py * px
    ly, lx = 2 * py - 1, 2 * px - 1
    centre = ((2 * pz - 1) * ly * lx) // 2
    n_d = aff.shape[1]
    n_f = fpos.shape[0]
    t = np.float32(threshold)
    lo_t = np.float32(1.0) - t
    one = np.float32(1.0)
    zero = np.float32(0.0)
    scores = np.zeros((n_chunks, val.shape[0]), np.float64)
    for chunk in prange(n_chunks):
        num = np.empty(n_d, np.float32)
        cnt = np.empty(n_d, np.float32)
        row = np.empty(n_d, np.float32)
        for i in range(chunk * n_f // n_chunks, (chunk + 1) * n_f // n_chunks):
            p = fpos[i]
            z0, y0, x0 = p // (ys * xs), (p // xs) % ys, p % xs
            num[:] = 0
            cnt[:] = 0
            # Eq. 3-4: gather the votes of every patch x that contains y (y = x + o1) on pairs (y, x + o2)
            for k1 in range(k_all):
                iz1, iy1, ix1 = k1 // (py * px), (k1 // px) % py, k1 % px
                xz, xy, xx = z0 - iz1 + hz, y0 - iy1 + hy, x0 - ix1 + hx
                if xz < 0 or xz >= zs or xy < 0 or xy >= ys or xx < 0 or xx >= xs:
                    continue
                c = cidx[(xz * ys + xy) * xs + xx]
                if c < 0:
                    continue
                a = val[c, k1]
                a_fg = a > t
                # a fg: + a*b (b fg) - a*(1-b) (b bg); a bg: -(1-a)*b (b fg); pairs count if one end is fg
                c_fg = a if a_fg else (-(one - a) if a < lo_t else zero)
                c_bg = -a if a_fg else zero
                r1 = iz1 * py + iy1
                for r2 in range(r1, pz * py):
                    iz2, iy2 = r2 // py, r2 % py
                    start = ix1 if r2 == r1 else 0
                    base = r2 * px
                    dbase = ((iz2 - iz1 + pz - 1) * ly + (iy2 - iy1 + py - 1)) * lx + (px - 1 - ix1) - centre
                    for ix2 in range(start, px):
                        b = val[c, base + ix2]
                        b_fg = b > t
                        b_bg = (b >= zero) and (b < lo_t)
                        num[dbase + ix2] += (c_fg * b if b_fg else zero) + (c_bg * (one - b) if b_bg else zero)
                        cnt[dbase + ix2] += one if (b_fg or (a_fg and b >= zero)) else zero
            for d in range(n_d):
                if cnt[d] > 0:
                    row[d] = num[d] / cnt[d]
                    aff[i, d] = np.int16(np.round(row[d] * AFF_SCALE))
                else:
                    row[d] = 0
                    aff[i, d] = UNCOVERED
            # Eq. 5: each patch containing y gets + aff for fg-fg pairs and - aff for fg-bg pairs (y first)
            for k1 in range(k_all):
                iz1, iy1, ix1 = k1 // (py * px), (k1 // px) % py, k1 % px
                xz, xy, xx = z0 - iz1 + hz, y0 - iy1 + hy, x0 - ix1 + hx
                if xz < 0 or xz >= zs or xy < 0 or xy >= ys or xx < 0 or xx >= xs:
                    continue
                c = cidx[(xz * ys + xy) * xs + xx]
                if c < 0:
                    continue
                a = val[c, k1]
                a_fg = a > t
                if not a_fg and a >= lo_t:
                    continue
                w_fg = one if a_fg else -one
                w_bg = -one if a_fg else zero
                acc = zero
                r1 = iz1 * py + iy1
                for r2 in range(r1, pz * py):
                    iz2, iy2 = r2 // py, r2 % py
                    start = ix1 + 1 if r2 == r1 else 0
                    base = r2 * px
                    dbase = ((iz2 - iz1 + pz - 1) * ly + (iy2 - iy1 + py - 1)) * lx + (px - 1 - ix1) - centre
                    for ix2 in range(start, px):
                        b = val[c, base + ix2]
                        w = w_fg if b > t else (w_bg if (b >= zero and b < lo_t) else zero)
                        acc += w * row[dbase + ix2]
                scores[chunk, c] += acc
    return scores.sum(axis=0)


def consensus_and_scores(ps: PatchSet) -> tuple[np.ndarray, np.ndarray]:
    """Consensus affinities (Eq. 3-4) of all foreground pixel pairs in patch range and patch scores (Eq. 5).

    Returns
    -------
    aff : (N_F, D) ndarray of int16
        Stored consensus affinities (see the module docstring for the layout).
    score : (N_C,) ndarray of float64
        Eq. 5 for every patch with a non-empty foreground, ``-inf`` for the others. A patch whose foreground is
        its only in-domain pixel (no pair) scores 0.
    """
    aff = np.empty((len(ps.fpos), ps.n_diff), np.int16)
    n_chunks = max(1, 4 * numba.get_num_threads())
    raw = _consensus_scores(ps.val, ps.cidx, ps.fpos, np.asarray(ps.shape, np.int64),
                            np.asarray(ps.patch, np.int64), np.float32(ps.threshold), aff, n_chunks)
    nv = ps.n_valid.astype(np.float64)
    nb = nv - ps.n_fg
    pairs = nv * (nv - 1) / 2 - nb * (nb - 1) / 2
    score = np.where(pairs > 0, raw / np.maximum(pairs, 1), 0.0)
    score[ps.n_fg == 0] = -np.inf
    return aff, score

"""PatchPerPix consensus affinities (Eq. 3-4) and patch scores (Eq. 5), sparse and fused, with numba.

Data layout
-----------
Everything works on the image foreground ``F`` only (the paper's ``patch_sparse``: a patch sees the pixels of
its window that lie in ``F``). 2D data is handled as 3D with one plane.

- ``val`` ``(N_C, pz * py * (2 px - 1))`` float32: the patch of each patch centre (foreground pixels that
  are not overlap) in "slots": offset ``(iz, iy, ix)`` of the window sits at slot
  ``(iz * py + iy) * (2 px - 1) + ix``, i.e. patch rows are padded to the row length of the difference grid.
  ``-1`` marks slots outside the image, outside ``F`` or in the padding; they contribute exactly nothing.
  Slots on predicted overlap pixels hold ``OVERLAP_BASE - p``: negative, so they are left out of the
  consensus like in the published implementation, while :func:`claim` recovers ``p`` for the cover and the
  output.
- Consensus affinities exist only for pixel pairs ``(y, y + d)`` that fit in one window, ``d`` in the
  difference set ``P - P`` (``(2p - 1)`` per axis). Each unordered pair is stored once, at its first pixel in
  raster order, so a row of ``aff`` ``(N_F, D)`` holds the "positive" half of the difference set, ``d = 0``
  first (``D = (prod(2p - 1) + 1) / 2``: 1201 for 25x25, 2457 for 9x9x9). Values are int16 fixed point
  (``aff * AFF_SCALE``); :data:`UNCOVERED` marks pairs no informative patch covers (``Z_aff = 0``).

Algorithm
---------
One parallel pass over the foreground pixels ``y``. For each ``y`` the sums of Eq. 3 and the counts of
Eq. 4 of all pairs ``(y, y + d)`` are gathered from every patch containing ``y`` into a per-thread row. With
the padded slots, a whole plane of a patch maps onto one contiguous run of that row, so the inner loops are
long and numba vectorises them. The row is divided, written to ``aff``, and then the same patches receive
their Eq. 5 contributions from that row while it is hot in cache. No dense consensus array over the whole
image is ever allocated and each thread writes only its own rows and its own score accumulators. Cost:
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
OVERLAP_BASE = -2.0
"""Slots on overlap pixels hold ``OVERLAP_BASE - p`` (in ``[-3, -2]``), invalid for the consensus."""


@njit(cache=True, inline="always")
def claim(v):
    """Patch probability of a slot value for cover and output: overlap slots decoded, others as stored."""
    return v if v >= 0 else OVERLAP_BASE - v


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
    val : (N_C, pz * py * (2 px - 1)) ndarray of float32
        Patch values by slot (see the module docstring), ``-1`` outside the patch's sparse domain.
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
    def row(self) -> int:
        """Slot row length ``2 px - 1``."""
        return 2 * self.patch[2] - 1

    @property
    def offsets(self) -> np.ndarray:
        """Flat image offset of each slot (:func:`slot_offsets`)."""
        return slot_offsets(self.shape, self.patch)

    @property
    def n_diff(self) -> int:
        """Stored differences per pixel (positive half of ``P - P``, zero included)."""
        pz, py, px = self.patch
        return ((2 * pz - 1) * (2 * py - 1) * (2 * px - 1) + 1) // 2


def as_3d(arr: np.ndarray, spatial_ndim: int) -> np.ndarray:
    """View a ``(..., Y, X)`` array as ``(..., 1, Y, X)`` when ``spatial_ndim == 2``."""
    return arr[..., np.newaxis, :, :] if spatial_ndim == 2 else arr


def slot_offsets(shape: tuple[int, int, int], patch: tuple[int, int, int]) -> np.ndarray:
    """``(pz * py * (2 px - 1),)`` int64: flat image offset of each slot from the centre (0 for padding).

    ``centre + slot_offsets[s]`` is the pixel of slot ``s`` whenever the slot holds a value (in the image).
    """
    pz, py, px = patch
    _, ys, xs = shape
    iz, iy, ix = np.meshgrid(
        np.arange(pz) - pz // 2, np.arange(py) - py // 2, np.arange(2 * px - 1) - px // 2, indexing="ij"
    )
    off = (iz * ys + iy) * xs + ix
    off[:, :, px:] = 0
    return off.ravel().astype(np.int64)


@njit(parallel=True, cache=True)
def _gather_patches(patches, cpos, fmask, omask, patch, threshold):
    n_c = cpos.shape[0]
    _, zs, ys, xs = patches.shape
    pz, py, px = patch
    lx = 2 * px - 1
    val = np.full((n_c, pz * py * lx), np.float32(-1.0))
    n_valid = np.zeros(n_c, np.int32)
    n_fg = np.zeros(n_c, np.int32)
    for c in prange(n_c):
        p = cpos[c]
        z0, y0, x0 = p // (ys * xs), (p // xs) % ys, p % xs
        nv, nf = 0, 0
        for iz in range(pz):
            z = z0 + iz - pz // 2
            if z < 0 or z >= zs:
                continue
            for iy in range(py):
                y = y0 + iy - py // 2
                if y < 0 or y >= ys:
                    continue
                for ix in range(px):
                    x = x0 + ix - px // 2
                    if 0 <= x < xs and fmask[z, y, x]:
                        v = min(
                            max(patches[(iz * py + iy) * px + ix, z0, y0, x0], np.float32(0.0)),
                            np.float32(1.0),
                        )
                        if omask[z, y, x]:  # claimed for cover and output, left out of the consensus
                            val[c, (iz * py + iy) * lx + ix] = np.float32(OVERLAP_BASE) - v
                            continue
                        val[c, (iz * py + iy) * lx + ix] = v
                        nv += 1
                        if v > threshold:
                            nf += 1
        n_valid[c] = nv
        n_fg[c] = nf
    return val, n_valid, n_fg


def prepare(
    patches: np.ndarray,
    fmask: np.ndarray,
    overlap: np.ndarray | None,
    threshold: float,
    patch: tuple[int, int, int],
) -> PatchSet:
    """Collect the patches of all centres.

    Parameters
    ----------
    patches : (K, Z, Y, X) ndarray of float32
        Patch channels of the prediction (raster offset order, ``K = pz * py * px``).
    fmask : (Z, Y, X) ndarray of bool
        Image foreground ``F``.
    overlap : (Z, Y, X) ndarray of bool, optional
        Predicted overlap pixels: they are no patch centres and take no part in the consensus (Sec. 2.3), but
        patches still claim them for the cover and the output.
    threshold : float
        ``t`` of Eq. 1, in ``[0.5, 1)``.
    patch : tuple of int
        ``(pz, py, px)`` window.
    """
    fpos = np.flatnonzero(fmask).astype(np.int64)
    fidx = np.full(fmask.size, -1, np.int32)
    fidx[fpos] = np.arange(len(fpos), dtype=np.int32)
    omask = np.zeros(fmask.shape, bool) if overlap is None else (overlap & fmask)
    cpos = np.flatnonzero(fmask & ~omask).astype(np.int64)
    cidx = np.full(fmask.size, -1, np.int32)
    cidx[cpos] = np.arange(len(cpos), dtype=np.int32)
    val, n_valid, n_fg = _gather_patches(
        np.ascontiguousarray(patches, np.float32),
        cpos,
        np.ascontiguousarray(fmask),
        np.ascontiguousarray(omask),
        np.asarray(patch, np.int64),
        np.float32(threshold),
    )
    return PatchSet(
        tuple(int(s) for s in fmask.shape),
        tuple(int(p) for p in patch),
        float(threshold),
        fpos,
        fidx,
        cpos,
        cidx,
        val,
        n_valid,
        n_fg,
    )


@njit(parallel=True, fastmath=True, cache=True)
def _consensus_scores(val, cidx, fpos, shape, patch, threshold, aff, n_chunks):
    zs, ys, xs = shape
    pz, py, px = patch
    hz, hy, hx = pz // 2, py // 2, px // 2
    ly, lx = 2 * py - 1, 2 * px - 1
    plane = py * lx  # slots per patch plane
    centre = ((2 * pz - 1) * ly * lx) // 2
    n_d = aff.shape[1]
    n_f = fpos.shape[0]
    t = np.float32(threshold)
    lo_t = np.float32(1.0) - t
    one = np.float32(1.0)
    zero = np.float32(0.0)
    scores = np.zeros((n_chunks, val.shape[0]), np.float64)

    def b_bg(b):  # in the patch domain and below 1 - t (Eq. 2)
        return (b >= zero) & (b < lo_t)

    for chunk in prange(n_chunks):
        # slack at the end: padding slots of the last plane land past the stored half (and add 0 there)
        num = np.zeros(n_d + lx, np.float32)
        cnt = np.zeros(n_d + lx, np.float32)
        row = np.zeros(n_d + lx, np.float32)
        around = np.empty((pz * py * px, 4), np.int64)
        for i in range(chunk * n_f // n_chunks, (chunk + 1) * n_f // n_chunks):
            p = fpos[i]
            z0, y0, x0 = p // (ys * xs), (p // xs) % ys, p % xs
            num[:] = 0
            cnt[:] = 0
            # the patches x containing y (y = x + o1): centre index and the offset o1 of y in them
            n_x = 0
            for iz1 in range(pz):
                xz = z0 - iz1 + hz
                if xz < 0 or xz >= zs:
                    continue
                for iy1 in range(py):
                    xy = y0 - iy1 + hy
                    if xy < 0 or xy >= ys:
                        continue
                    for ix1 in range(px):
                        xx = x0 - ix1 + hx
                        if xx < 0 or xx >= xs:
                            continue
                        c = cidx[(xz * ys + xy) * xs + xx]
                        if c >= 0:
                            around[n_x, 0], around[n_x, 1], around[n_x, 2], around[n_x, 3] = c, iz1, iy1, ix1
                            n_x += 1
            # Eq. 3-4: the votes of every such patch on the pairs (y, x + o2), o2 >= o1
            for j_x in range(n_x):
                c, iz1, iy1, ix1 = around[j_x, 0], around[j_x, 1], around[j_x, 2], around[j_x, 3]
                s1 = (iz1 * py + iy1) * lx + ix1
                a = val[c, s1]
                if a < zero:  # y is an overlap pixel: no consensus
                    continue
                a_fg = a > t
                # a fg: + a*b (b fg) - a*(1-b) (b bg); a bg: -(1-a)*b (b fg); a pair counts if one end is fg
                c_fg = a if a_fg else (-(one - a) if a < lo_t else zero)
                c_bg = -a if a_fg else zero
                for iz2 in range(iz1, pz):
                    first = s1 if iz2 == iz1 else iz2 * plane
                    last = (iz2 + 1) * plane
                    # slot s2 of this plane pairs with difference index s2 + shift
                    shift = (
                        (iz2 - iz1 + pz - 1) * ly * lx
                        - iz2 * plane
                        + (py - 1 - iy1) * lx
                        + px
                        - 1
                        - ix1
                        - centre
                    )
                    src = val[c, first:last]
                    dst_num = num[first + shift : last + shift]
                    dst_cnt = cnt[first + shift : last + shift]
                    if a_fg:  # non-negative loop index: no wrap-around check, so numba vectorises
                        for j in range(last - first):
                            b = src[j]
                            dst_num[j] += c_fg * b if b > t else (c_bg * (one - b) if b_bg(b) else zero)
                            dst_cnt[j] += one if b >= zero else zero
                    else:  # only pairs with a foreground b count
                        for j in range(last - first):
                            b = src[j]
                            dst_num[j] += c_fg * b if b > t else zero
                            dst_cnt[j] += one if b > t else zero
            for d in range(n_d):
                if cnt[d] > 0:
                    row[d] = num[d] / cnt[d]
                    aff[i, d] = np.int16(np.round(row[d] * AFF_SCALE))
                else:
                    row[d] = 0
                    aff[i, d] = UNCOVERED
            # Eq. 5: each patch containing y gets + aff for fg-fg pairs and - aff for fg-bg pairs (y first)
            for j_x in range(n_x):
                c, iz1, iy1, ix1 = around[j_x, 0], around[j_x, 1], around[j_x, 2], around[j_x, 3]
                s1 = (iz1 * py + iy1) * lx + ix1
                a = val[c, s1]
                a_fg = a > t
                if a < zero or (not a_fg and a >= lo_t):
                    continue
                acc = zero
                for iz2 in range(iz1, pz):
                    first = s1 + 1 if iz2 == iz1 else iz2 * plane
                    last = (iz2 + 1) * plane
                    shift = (
                        (iz2 - iz1 + pz - 1) * ly * lx
                        - iz2 * plane
                        + (py - 1 - iy1) * lx
                        + px
                        - 1
                        - ix1
                        - centre
                    )
                    src = val[c, first:last]
                    got = row[first + shift : last + shift]
                    if a_fg:
                        for j in range(last - first):
                            b = src[j]
                            acc += got[j] if b > t else (-got[j] if b_bg(b) else zero)
                    else:
                        for j in range(last - first):
                            acc -= got[j] if src[j] > t else zero
                scores[chunk, c] += acc
    return scores.sum(axis=0)


def consensus_and_scores(ps: PatchSet) -> tuple[np.ndarray, np.ndarray]:
    """Consensus affinities (Eq. 3-4) of all foreground pixel pairs in patch range and patch scores (Eq. 5).

    Returns
    -------
    aff : (N_F, D) ndarray of int16
        Stored consensus affinities (see the module docstring for the layout).
    score : (N_C,) ndarray of float64
        Eq. 5 for every patch with a non-empty foreground, ``-inf`` for the others. A patch whose foreground
        is
        its only in-domain pixel (no pair) scores 0.
    """
    aff = np.empty((len(ps.fpos), ps.n_diff), np.int16)
    n_chunks = max(1, 4 * numba.get_num_threads())
    raw = _consensus_scores(
        ps.val,
        ps.cidx,
        ps.fpos,
        np.asarray(ps.shape, np.int64),
        np.asarray(ps.patch, np.int64),
        np.float32(ps.threshold),
        aff,
        n_chunks,
    )
    nv = ps.n_valid.astype(np.float64)
    nb = nv - ps.n_fg
    pairs = nv * (nv - 1) / 2 - nb * (nb - 1) / 2
    score = np.where(pairs > 0, raw / np.maximum(pairs, 1), 0.0)
    score[ps.n_fg == 0] = -np.inf
    return aff, score

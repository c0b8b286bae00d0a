"""PatchPerPix patches restricted to the foreground: the input of the consensus, cover and graph kernels.

Everything works on the image foreground ``F`` only (the paper's ``patch_sparse``: a patch sees the pixels of
its window that lie in ``F``). 2D data is handled as 3D with one plane. The patch of every patch centre
(foreground pixels that are not overlap) is gathered into one row of ``val`` ``(N_C, K)`` float32, offsets in
raster order (slot ``k = (iz * py + iy) * px + ix``):

- ``p`` in ``[0, 1]`` for offsets on non-overlap foreground pixels (the consensus domain);
- ``OVERLAP_BASE - p`` (in ``[-3, -2]``) on predicted overlap pixels: negative, so they are left out of the
  consensus like in the published implementation (Sec. 2.3), while :func:`claim` recovers ``p`` for the cover
  and the output;
- ``-1`` outside the image or outside ``F``.

Probabilities are used at 8-bit precision (steps of 1/254, far finer than a network's calibration): the
consensus kernel reads the same patches as ``qval`` ``(N_C, K)`` uint8 (``round(254 p)``, :data:`Q_NONE` off
the consensus domain), a quarter of the memory traffic, and ``val`` holds exactly ``qval / 254``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit, prange

OVERLAP_BASE = -2.0
"""Slots on overlap pixels hold ``OVERLAP_BASE - p`` (in ``[-3, -2]``), invalid for the consensus."""


Q_LEVELS = 254
"""Patch probabilities are quantised to ``round(Q_LEVELS * p) / Q_LEVELS``."""
Q_NONE = 255
"""``qval`` of slots outside the consensus domain (outside the image or ``F``, or on overlap pixels)."""


def quantized(p: np.ndarray) -> np.ndarray:
    """``p`` clipped to [0, 1] and rounded to the 8-bit grid used by the assembly, as float32."""
    q = np.round(np.clip(np.asarray(p, np.float32), 0, 1) * np.float32(Q_LEVELS))
    return (q.astype(np.float32) / np.float32(Q_LEVELS)).astype(np.float32)


def q_thresholds(threshold: float) -> tuple[int, int]:
    """``(q_fg, q_bg)``: on the 8-bit grid, ``p > t`` is ``q > q_fg`` and ``p < 1 - t`` is ``q < q_bg``."""
    grid = np.arange(Q_LEVELS + 1, dtype=np.float32) / np.float32(Q_LEVELS)
    t = np.float32(threshold)
    q_fg = int(np.flatnonzero(grid <= t).max())
    q_bg = int(np.flatnonzero(grid >= np.float32(1.0) - t).min())
    return q_fg, q_bg


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
        Flat positions of the patch centres (foreground minus overlap), increasing.
    cidx : (Z * Y * X,) ndarray of int32
        Centre index of each pixel, ``-1`` elsewhere.
    val : (N_C, K) ndarray of float32
        Patch values by slot (see the module docstring).
    qval : (N_C, K) ndarray of uint8
        The same on the 8-bit grid for the consensus: ``round(254 p)``, :data:`Q_NONE` off the domain.
    n_valid, n_fg : (N_C,) ndarray of int32
        Number of slots in the consensus domain and in the patch foreground ``fg(p_x)``.
    spans : (N_C, pz, 4) ndarray of int32
        Per patch plane, the slot ranges ``[first, end)`` of its domain (0, 1) and foreground (2, 3) slots.
    """

    shape: tuple[int, int, int]
    patch: tuple[int, int, int]
    threshold: float
    fpos: np.ndarray
    fidx: np.ndarray
    cpos: np.ndarray
    cidx: np.ndarray
    val: np.ndarray
    qval: np.ndarray
    n_valid: np.ndarray
    n_fg: np.ndarray
    spans: np.ndarray

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
    """``(K,)`` int64: flat image offset of each slot from the patch centre.

    ``centre + slot_offsets[k]`` is the pixel of slot ``k`` whenever the slot holds a value (is in the image).
    """
    pz, py, px = patch
    _, ys, xs = shape
    iz, iy, ix = np.meshgrid(
        np.arange(pz) - pz // 2, np.arange(py) - py // 2, np.arange(px) - px // 2, indexing="ij"
    )
    return ((iz * ys + iy) * xs + ix).ravel().astype(np.int64)


@njit(parallel=True, cache=True)
def _gather_patches(patches, cpos, fmask, omask, patch, threshold):
    n_c = cpos.shape[0]
    _, zs, ys, xs = patches.shape
    pz, py, px = patch
    plane = py * px
    val = np.full((n_c, pz * plane), np.float32(-1.0))
    qval = np.full((n_c, pz * plane), np.uint8(Q_NONE))
    n_valid = np.zeros(n_c, np.int32)
    n_fg = np.zeros(n_c, np.int32)
    spans = np.zeros((n_c, pz, 4), np.int32)
    levels = np.float32(Q_LEVELS)
    for c in prange(n_c):
        p = cpos[c]
        z0, y0, x0 = p // (ys * xs), (p // xs) % ys, p % xs
        nv, nf = 0, 0
        for iz in range(pz):
            v_lo, v_hi, f_lo, f_hi = (iz + 1) * plane, 0, (iz + 1) * plane, 0
            z = z0 + iz - pz // 2
            for iy in range(py):
                y = y0 + iy - py // 2
                if z < 0 or z >= zs or y < 0 or y >= ys:
                    continue
                for ix in range(px):
                    x = x0 + ix - px // 2
                    if x < 0 or x >= xs or not fmask[z, y, x]:
                        continue
                    k = (iz * py + iy) * px + ix
                    raw = min(max(patches[k, z0, y0, x0], np.float32(0.0)), np.float32(1.0))
                    q = np.uint8(np.round(raw * levels))
                    v = np.float32(q) / levels
                    if omask[z, y, x]:  # claimed for cover and output, left out of the consensus
                        val[c, k] = np.float32(OVERLAP_BASE) - v
                        continue
                    val[c, k] = v
                    qval[c, k] = q
                    nv += 1
                    v_lo, v_hi = min(v_lo, k), k + 1
                    if v > threshold:
                        nf += 1
                        f_lo, f_hi = min(f_lo, k), k + 1
            spans[c, iz, 0], spans[c, iz, 1], spans[c, iz, 2], spans[c, iz, 3] = v_lo, v_hi, f_lo, f_hi
        n_valid[c] = nv
        n_fg[c] = nf
    return val, qval, n_valid, n_fg, spans


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
    val, qval, n_valid, n_fg, spans = _gather_patches(
        np.ascontiguousarray(patches, np.float32),
        cpos,
        np.ascontiguousarray(fmask),
        np.ascontiguousarray(omask),
        np.asarray(patch, np.int64),
        np.float32(threshold),
    )
    z, y, x = fmask.shape
    return PatchSet(
        (int(z), int(y), int(x)),
        (int(patch[0]), int(patch[1]), int(patch[2])),
        float(threshold),
        fpos,
        fidx,
        cpos,
        cidx,
        val,
        qval,
        n_valid,
        n_fg,
        spans,
    )

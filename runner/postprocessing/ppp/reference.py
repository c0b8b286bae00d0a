"""A direct dense numpy implementation of the PatchPerPix assembly, for tests and benchmarks only.

It follows Eq. 3-6 literally with the dense layout of the published implementation: a consensus array of
``prod(2p - 1)`` values per pixel of the image (sums and counts, both halves of the difference set), filled
by one vectorised update per pair of patch offsets. Same inputs, same restriction of the patches to the
foreground and the same tie-breaking as :func:`~runner.postprocessing.ppp.patchperpix.assemble`, so both give
the same instances; memory is ``8 * prod(2p - 1)`` bytes per pixel (19 kB for 25x25) and time ``K^2``
image-sized operations.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from runner.postprocessing.ppp.graph import PatchGraph, partition
from runner.postprocessing.ppp.patches import as_3d, quantized
from runner.postprocessing.ppp.select import rank


def _shift(offset, shape):
    """Slices so that ``a[dst] = b[src]`` puts ``b[x]`` at ``x + offset``."""
    dst, src = [], []
    for o, n in zip(offset, shape, strict=True):
        dst.append(slice(max(0, o), min(n, n + o)))
        src.append(slice(max(0, -o), min(n, n - o)))
    return tuple(dst), tuple(src)


def _offsets(patch):
    grids = np.meshgrid(*[np.arange(p) - p // 2 for p in patch], indexing="ij")
    return np.stack([g.ravel() for g in grids], axis=1)


def dense_patches(
    pred3: np.ndarray, fmask: np.ndarray, overlap: np.ndarray, patch3
) -> tuple[np.ndarray, np.ndarray]:
    """Value of offset ``k`` of the patch at each centre ``x`` (``F`` minus overlap), ``(K, Z, Y, X)``.

    Returns ``(vals, claims)``: ``vals`` is NaN where ``x + o_k`` is outside the image, outside ``F`` or an
    overlap pixel (the consensus domain); ``claims`` keeps overlap pixels (used for the cover and the output).
    """
    offsets = _offsets(patch3)
    centres = fmask & ~overlap
    vals = np.full((len(offsets), *fmask.shape), np.nan, np.float32)
    claims = np.full_like(vals, np.nan)
    for k, off in enumerate(offsets):
        dst, src = _shift(-off, fmask.shape)  # the pixel x + off, seen from x
        inside = np.zeros(fmask.shape, bool)
        inside[dst] = fmask[src]
        is_overlap = np.zeros(fmask.shape, bool)
        is_overlap[dst] = overlap[src]
        ok = inside & centres
        claims[k][ok] = np.clip(pred3[1 + k][ok], 0, 1)
        ok &= ~is_overlap
        vals[k][ok] = np.clip(pred3[1 + k][ok], 0, 1)
    return vals, claims


def dense_consensus(vals: np.ndarray, patch3, t: float) -> tuple[np.ndarray, np.ndarray]:
    """Eq. 3-4 on the full difference grid. Returns ``aff`` ``(D_full, Z, Y, X)`` (NaN where ``Z_aff = 0``)
    and the index grid ``dmap[k1, k2]`` of ``o2 - o1``."""
    offsets = _offsets(patch3)
    k_all = len(offsets)
    lens = [2 * p - 1 for p in patch3]
    diff = offsets[np.newaxis] - offsets[:, np.newaxis]
    dmap = np.ravel_multi_index(tuple((diff + np.array(patch3) - 1).transpose(2, 0, 1)), lens)
    shape = vals.shape[1:]
    num = np.zeros((int(np.prod(lens)), *shape), np.float32)
    cnt = np.zeros_like(num)
    valid = ~np.isnan(vals)
    v0 = np.nan_to_num(vals, nan=0.0)
    fg = valid & (vals > t)
    bg = valid & (vals < 1 - t)
    for k1 in range(k_all):
        a, a_fg, a_bg = v0[k1][np.newaxis], fg[k1][np.newaxis], bg[k1][np.newaxis]
        f = (
            np.where(a_fg & fg, a * v0, 0)
            - np.where(a_fg & bg, a * (1 - v0), 0)
            - np.where(a_bg & fg, (1 - a) * v0, 0)
        )
        c = (valid[k1][np.newaxis] & valid & (a_fg | fg)).astype(np.float32)
        dst, src = _shift(offsets[k1], shape)  # pair (x + o1, x + o2) is stored at y = x + o1
        num[(dmap[k1],) + dst] += f[(slice(None),) + src]
        cnt[(dmap[k1],) + dst] += c[(slice(None),) + src]
    with np.errstate(invalid="ignore", divide="ignore"):
        aff = np.where(cnt > 0, num / cnt, np.nan).astype(np.float32)
    return aff, dmap


def dense_scores(vals: np.ndarray, aff: np.ndarray, dmap: np.ndarray, patch3, t: float) -> np.ndarray:
    """Eq. 5 for every patch, ``(Z, Y, X)``; ``-inf`` where the patch has no foreground or is no centre."""
    offsets = _offsets(patch3)
    shape = vals.shape[1:]
    valid = ~np.isnan(vals)
    fg = valid & (vals > t)
    bg = valid & (vals < 1 - t)
    total = np.zeros(shape, np.float64)
    pairs = np.zeros(shape, np.float64)
    for k1 in range(len(offsets) - 1):
        rest = slice(k1 + 1, None)
        w = (fg[k1] & fg[rest]).astype(np.float32) - (fg[k1] & bg[rest]) - (bg[k1] & fg[rest])
        pairs += (valid[k1] & valid[rest] & (fg[k1] | fg[rest])).sum(axis=0)
        # aff of the pair (x + o1, x + o2), read at y = x + o1
        src_dst, src = _shift(-offsets[k1], shape)
        got = np.zeros((len(offsets) - k1 - 1, *shape), np.float32)
        got[(slice(None),) + src_dst] = aff[(dmap[k1, rest],) + src]
        total += np.where(w != 0, w * np.nan_to_num(got), 0).sum(axis=0)
    has_fg = fg.any(axis=0)
    score = np.where(pairs > 0, total / np.maximum(pairs, 1), 0.0)
    return np.where(has_fg, score, -np.inf)


def _fg_pixels(vals, fg_idx, c, offsets, shape, t):
    x = np.array(np.unravel_index(c, shape))
    ks = np.flatnonzero(vals[:, c] > t)
    return np.ravel_multi_index(tuple((x + offsets[ks]).T), shape), ks


def dense_select(
    vals: np.ndarray, score: np.ndarray, patch3, t: float, *, thin_out: bool = True
) -> np.ndarray:
    """Greedy cover by score then thin-out; returns flat centre positions in selection order."""
    offsets = _offsets(patch3)
    shape = vals.shape[1:]
    flat = vals.reshape(len(vals), -1)
    flat_score = score.ravel()
    order = rank(flat_score)
    sets = {int(c): set(_fg_pixels(flat, None, c, offsets, shape, t)[0].tolist()) for c in order}
    todo = set().union(*sets.values()) if sets else set()
    pre = []
    for c in order:
        if not todo:
            break
        if sets[int(c)] & todo:
            pre.append(int(c))
            todo -= sets[int(c)]
    if not thin_out:
        return np.array(pre, np.int64)
    todo = set().union(*(sets[c] for c in pre)) if pre else set()
    chosen = []
    while todo:
        gains = [len(sets[c] & todo) for c in pre]
        best = int(np.argmax(gains))
        chosen.append(pre[best])
        todo -= sets[pre[best]]
    return np.array(chosen, np.int64)


def dense_patch_graph(vals, aff, selected, patch3, t) -> PatchGraph:
    """Eq. 6 between all selected pairs with ``Z_paff > 0`` (aff read from the full dense grid)."""
    offsets = _offsets(patch3)
    shape = vals.shape[1:]
    flat = vals.reshape(len(vals), -1)
    lens = np.array([2 * p - 1 for p in patch3])
    aff_flat = aff.reshape(len(aff), -1)
    pix = [_fg_pixels(flat, None, c, offsets, shape, t)[0] for c in selected]
    coords = [np.array(np.unravel_index(p, shape)).T for p in pix]
    uv, paff = [], []
    for a in range(len(selected)):
        for b in range(a + 1, len(selected)):
            d = coords[b][np.newaxis] - coords[a][:, np.newaxis]  # (n_a, n_b, 3): w - v
            ok = np.all(np.abs(d) <= np.array(patch3) - 1, axis=2)
            if not ok.any():
                continue
            ia, ib = np.nonzero(ok)
            didx = np.ravel_multi_index(tuple((d[ia, ib] + np.array(patch3) - 1).T), tuple(lens))
            q = aff_flat[didx, pix[a][ia]]
            q = q[~np.isnan(q)]
            if len(q):
                uv.append((a, b))
                paff.append(float(q.mean()))
    return PatchGraph(np.asarray(selected, np.int64), np.array(uv, np.int64).reshape(-1, 2), np.array(paff))


def dense_assemble(
    prediction: np.ndarray,
    *,
    patch,
    threshold: float = 0.5,
    fg_threshold: float = 0.5,
    overlap_threshold: float = 0.5,
    overlap: bool = True,
    partition_method: Literal["cc", "mws"] = "cc",
    thin_out: bool = True,
) -> np.ndarray:
    """Label image ``(Z,) Y, X`` (most probable patch per pixel), computed densely."""
    ndim = prediction.ndim - 1
    pred3 = as_3d(np.asarray(prediction, np.float32), ndim)
    patch3 = (1, *patch) if ndim == 2 else tuple(patch)
    fmask = pred3[0] > fg_threshold
    omask = fmask & (pred3[-1] > overlap_threshold) if overlap else np.zeros_like(fmask)
    k = int(np.prod(patch3))
    pred3 = np.concatenate([pred3[:1], quantized(pred3[1 : 1 + k]), pred3[1 + k :]])  # the same 8-bit grid
    vals, claims = dense_patches(pred3, fmask, omask, patch3)
    aff, dmap = dense_consensus(vals, patch3, threshold)
    score = dense_scores(vals, aff, dmap, patch3, threshold)
    selected = dense_select(claims, score, patch3, threshold, thin_out=thin_out)
    graph = dense_patch_graph(claims, aff, selected, patch3, threshold)
    comp = partition(graph, partition_method)
    offsets = _offsets(patch3)
    flat = claims.reshape(len(claims), -1)
    out = np.zeros(fmask.size, np.uint32)
    best = np.full(fmask.size, -1.0, np.float32)
    for s, c in enumerate(selected):
        pix, ks = _fg_pixels(flat, None, c, offsets, fmask.shape, threshold)
        v = flat[ks, c]
        better = v > best[pix]
        best[pix[better]] = v[better]
        out[pix[better]] = comp[s] + 1
    return out.reshape(prediction.shape[1:])

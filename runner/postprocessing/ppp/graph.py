"""PatchPerPix patch graph: patch-pair affinities (Eq. 6), partition (CC or mutex watershed), rendering."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numba
import numpy as np
from numba import njit, prange

from runner.postprocessing.ppp.consensus import AFF_SCALE, UNCOVERED, PatchSet, claim


@dataclass
class PatchGraph:
    """Selected patches and the affinities between them.

    Attributes
    ----------
    selected : (S,) ndarray of int64
        Centre indices of the selected patches (graph nodes ``0 .. S-1``).
    uv : (E, 2) ndarray of int64
        Node pairs ``u < v`` with ``Z_paff > 0``.
    paff : (E,) ndarray of float64
        Patch-pair consensus affinity (Eq. 6) of each edge.
    """

    selected: np.ndarray
    uv: np.ndarray
    paff: np.ndarray


@njit(cache=True)
def _pixel_members(selected, val, cpos, fidx, offs, threshold, n_f):
    """CSR: for each foreground pixel, the selected patches (node ids) whose foreground contains it."""
    k_all = val.shape[1]
    count = np.zeros(n_f + 1, np.int64)
    for s in range(len(selected)):
        for k in range(k_all):
            if claim(val[selected[s], k]) > threshold:
                count[fidx[cpos[selected[s]] + offs[k]] + 1] += 1
    ptr = np.cumsum(count)
    members = np.empty(ptr[-1], np.int64)
    fill = ptr[:-1].copy()
    for s in range(len(selected)):
        for k in range(k_all):
            if claim(val[selected[s], k]) > threshold:
                i = fidx[cpos[selected[s]] + offs[k]]
                members[fill[i]] = s
                fill[i] += 1
    return ptr, members


@njit(cache=True)
def _candidates(selected, cpos, shape, patch):
    """CSR: for each node ``a``, the nodes ``b > a`` whose windows can hold a pair in patch range."""
    zs, ys, xs = shape
    n = len(selected)
    at = np.full(zs * ys * xs, -1, np.int64)
    for s in range(n):
        at[cpos[selected[s]]] = s
    rz, ry, rx = 2 * (patch[0] - 1), 2 * (patch[1] - 1), 2 * (patch[2] - 1)
    ptr = np.zeros(n + 1, np.int64)
    out = np.empty(16, np.int64)
    m = 0
    for a in range(n):
        p = cpos[selected[a]]
        z0, y0, x0 = p // (ys * xs), (p // xs) % ys, p % xs
        for z in range(max(0, z0 - rz), min(zs, z0 + rz + 1)):
            for y in range(max(0, y0 - ry), min(ys, y0 + ry + 1)):
                for x in range(max(0, x0 - rx), min(xs, x0 + rx + 1)):
                    b = at[(z * ys + y) * xs + x]
                    if b > a:
                        if m == len(out):
                            grown = np.empty(2 * m, np.int64)
                            grown[:m] = out
                            out = grown
                        out[m] = b
                        m += 1
        out[ptr[a] : m].sort()
        ptr[a + 1] = m
    return ptr, out[:m]


@njit(cache=True, inline="always")
def _slot(cand_ptr, cand, u, v):
    """Index of edge ``(u, v)``, ``u < v``, in the sorted candidate CSR (binary search)."""
    lo, hi = cand_ptr[u], cand_ptr[u + 1]
    while lo < hi:
        mid = (lo + hi) // 2
        if cand[mid] < v:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(parallel=True, cache=True)
def _patch_affinities(fpos, aff, fidx, shape, patch, mem_ptr, members, cand_ptr, cand, n_nodes, n_chunks):
    """Sum and count of Eq. 6 per candidate edge.

    Every stored pixel pair ``(v, w = v + d)``, ``d > 0``, is read once from the contiguous row of ``v``; its
    affinity is first summed per patch ``b`` holding ``w`` (``R(v, b)``), then ``R(v, b)`` goes to the edges
    ``{a, b}`` of every patch ``a`` holding ``v``. Pairs ``(v, v)`` go to the edges of patches sharing ``v``.
    """
    zs, ys, xs = shape
    pz, py, px = patch
    ly, lx = 2 * py - 1, 2 * px - 1
    centre = ((2 * pz - 1) * ly * lx) // 2
    n_f = len(fpos)
    total = np.zeros((n_chunks, len(cand)), np.float64)
    count = np.zeros((n_chunks, len(cand)), np.int64)
    for chunk in prange(n_chunks):
        acc = np.zeros(n_nodes, np.float64)
        cnt = np.zeros(n_nodes, np.int64)
        touched = np.empty(n_nodes, np.int64)
        for i in range(chunk * n_f // n_chunks, (chunk + 1) * n_f // n_chunks):
            m0, m1 = mem_ptr[i], mem_ptr[i + 1]
            if m0 == m1:
                continue
            q = aff[i, 0]
            if q != UNCOVERED:  # d = 0: v in both patches
                for ja in range(m0, m1):
                    for jb in range(ja + 1, m1):
                        u, w = min(members[ja], members[jb]), max(members[ja], members[jb])
                        e = _slot(cand_ptr, cand, u, w)
                        total[chunk, e] += q
                        count[chunk, e] += 1
            p = fpos[i]
            z0, y0, x0 = p // (ys * xs), (p // xs) % ys, p % xs
            n_t = 0
            for dz in range(0, pz):
                z = z0 + dz
                if z >= zs:
                    break
                for dy in range(-(py - 1) if dz > 0 else 0, py):
                    y = y0 + dy
                    if y < 0 or y >= ys:
                        continue
                    fbase = ((dz + pz - 1) * ly + (dy + py - 1)) * lx + px - 1 - centre
                    for dx in range(-(px - 1) if (dz > 0 or dy > 0) else 1, px):
                        x = x0 + dx
                        if x < 0 or x >= xs:
                            continue
                        iw = fidx[(z * ys + y) * xs + x]
                        if iw < 0 or mem_ptr[iw] == mem_ptr[iw + 1]:
                            continue
                        q = aff[i, fbase + dx]
                        if q == UNCOVERED:
                            continue
                        for jb in range(mem_ptr[iw], mem_ptr[iw + 1]):
                            b = members[jb]
                            if cnt[b] == 0:
                                touched[n_t] = b
                                n_t += 1
                            acc[b] += q
                            cnt[b] += 1
            for ja in range(m0, m1):
                a = members[ja]
                for j in range(n_t):
                    b = touched[j]
                    if b != a:
                        e = _slot(cand_ptr, cand, min(a, b), max(a, b))
                        total[chunk, e] += acc[b]
                        count[chunk, e] += cnt[b]
            for j in range(n_t):
                acc[touched[j]] = 0
                cnt[touched[j]] = 0
    return total.sum(axis=0), count.sum(axis=0)


def patch_graph(ps: PatchSet, aff: np.ndarray, selected: np.ndarray) -> PatchGraph:
    """Eq. 6 between the selected patches, for every pair with ``Z_paff > 0``."""
    shape = np.asarray(ps.shape, np.int64)
    patch = np.asarray(ps.patch, np.int64)
    t = np.float32(ps.threshold)
    selected = np.asarray(selected, np.int64)
    mem_ptr, members = _pixel_members(selected, ps.val, ps.cpos, ps.fidx, ps.offsets, t, len(ps.fpos))
    cand_ptr, cand = _candidates(selected, ps.cpos, shape, patch)
    n_chunks = max(1, 2 * numba.get_num_threads())
    total, count = _patch_affinities(
        ps.fpos, aff, ps.fidx, shape, patch, mem_ptr, members, cand_ptr, cand, len(selected), n_chunks
    )
    u = np.repeat(np.arange(len(selected), dtype=np.int64), np.diff(cand_ptr))
    keep = count > 0
    uv = np.stack([u[keep], cand[keep]], axis=1)
    paff = total[keep] / count[keep] / AFF_SCALE
    return PatchGraph(selected, uv, paff)


def partition(graph: PatchGraph, method: Literal["cc", "mws"], *, threshold: float = 0.0) -> np.ndarray:
    """Component of each node: connected components of the edges with ``paff > threshold`` (``"cc"``), or the
    mutex watershed with ``paff - threshold`` as attraction (> 0) and repulsion (< 0) (``"mws"``).

    Returns
    -------
    (S,) ndarray of int64
        Component ids ``0 .. n-1``.
    """
    n = len(graph.selected)
    if n == 0:
        return np.zeros(0, np.int64)
    weight = graph.paff - threshold
    if method == "cc":
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import connected_components

        pos = weight > 0
        adj = coo_matrix((np.ones(int(pos.sum())), (graph.uv[pos, 0], graph.uv[pos, 1])), shape=(n, n))
        return connected_components(adj, directed=False)[1].astype(np.int64)
    from bioimage_cpp.graph import undirected_graph
    from bioimage_cpp.graph.mutex_watershed import mutex_watershed_clustering

    pos = weight > 0
    g = undirected_graph(n)
    if pos.any():
        g.insert_edges(graph.uv[pos].astype(np.uint64))
    labels = mutex_watershed_clustering(
        g,
        weight[pos].astype(np.float64),
        graph.uv[~pos].astype(np.uint64).reshape(-1, 2),
        (-weight[~pos]).astype(np.float64),
    )
    return labels.astype(np.int64)


@njit(cache=True)
def _render_labels(selected, comp, val, cpos, offs, n_pix, threshold):
    """Each covered pixel takes the component of its most probable selected patch."""
    out = np.zeros(n_pix, np.uint32)
    best = np.full(n_pix, -1.0, np.float32)
    for s in range(len(selected)):
        for k in range(val.shape[1]):
            v = claim(val[selected[s], k])
            if v > threshold:
                p = cpos[selected[s]] + offs[k]
                if v > best[p]:
                    best[p] = v
                    out[p] = comp[s] + 1
    return out


@njit(cache=True)
def _render_stack(selected, comp, n_comp, val, cpos, offs, n_pix, threshold):
    """One plane per component: the union of its patches' foregrounds."""
    out = np.zeros((n_comp, n_pix), np.uint32)
    for s in range(len(selected)):
        for k in range(val.shape[1]):
            if claim(val[selected[s], k]) > threshold:
                out[comp[s], cpos[selected[s]] + offs[k]] = comp[s] + 1
    return out


def render(
    ps: PatchSet, selected: np.ndarray, comp: np.ndarray, output: Literal["labels", "stack"]
) -> np.ndarray:
    """Instances from the selected patches and their components.

    Returns
    -------
    (Z, Y, X) ndarray of uint32 (``"labels"``) or (N, Z, Y, X) ndarray of uint32 (``"stack"``, plane ``i``
    holds instance ``i + 1``).
    """
    n_pix = int(np.prod(ps.shape))
    t = np.float32(ps.threshold)
    comp = np.asarray(comp, np.int64)
    if output == "labels":
        return _render_labels(selected, comp, ps.val, ps.cpos, ps.offsets, n_pix, t).reshape(ps.shape)
    n = int(comp.max()) + 1 if len(comp) else 0
    return _render_stack(selected, comp, n, ps.val, ps.cpos, ps.offsets, n_pix, t).reshape((n, *ps.shape))

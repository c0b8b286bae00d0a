"""PatchPerPix patch graph: patch-pair affinities (Eq. 6), partition (CC or mutex watershed), rendering."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numba
import numpy as np
from numba import njit, prange

from runner.postprocessing.ppp_consensus import AFF_SCALE, UNCOVERED, PatchSet
from runner.postprocessing.ppp_select import _pixel


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
def _pixel_members(selected, val, cpos, fidx, shape, patch, threshold, n_f):
    """CSR: for each foreground pixel, the selected patches (node ids) whose foreground contains it."""
    k_all = val.shape[1]
    count = np.zeros(n_f + 1, np.int64)
    for s in range(len(selected)):
        for k in range(k_all):
            if val[selected[s], k] > threshold:
                count[fidx[_pixel(cpos[selected[s]], k, shape, patch)] + 1] += 1
    ptr = np.cumsum(count)
    members = np.empty(ptr[-1], np.int64)
    fill = ptr[:-1].copy()
    for s in range(len(selected)):
        for k in range(k_all):
            if val[selected[s], k] > threshold:
                i = fidx[_pixel(cpos[selected[s]], k, shape, patch)]
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
        ptr[a + 1] = m
    return ptr, out[:m]


@njit(parallel=True, cache=True)
def _patch_affinities(selected, val, cpos, fidx, aff, shape, patch, threshold, mem_ptr, members, cand_ptr,
                      cand, n_chunks):
    zs, ys, xs = shape
    pz, py, px = patch
    ly, lx = 2 * py - 1, 2 * px - 1
    centre = ((2 * pz - 1) * ly * lx) // 2
    k_all = val.shape[1]
    n = len(selected)
    total = np.zeros(len(cand), np.float64)
    count = np.zeros(len(cand), np.int64)
    for chunk in prange(n_chunks):
        acc = np.zeros(n, np.float64)
        cnt = np.zeros(n, np.int64)
        for a in range(chunk * n // n_chunks, (chunk + 1) * n // n_chunks):
            if cand_ptr[a] == cand_ptr[a + 1]:
                continue
            for k in range(k_all):
                if val[selected[a], k] <= threshold:
                    continue
                v = _pixel(cpos[selected[a]], k, shape, patch)
                iv = fidx[v]
                z0, y0, x0 = v // (ys * xs), (v // xs) % ys, v % xs
                for dz in range(-(pz - 1), pz):
                    z = z0 + dz
                    if z < 0 or z >= zs:
                        continue
                    for dy in range(-(py - 1), py):
                        y = y0 + dy
                        if y < 0 or y >= ys:
                            continue
                        fbase = ((dz + pz - 1) * ly + (dy + py - 1)) * lx + px - 1
                        for dx in range(-(px - 1), px):
                            x = x0 + dx
                            if x < 0 or x >= xs:
                                continue
                            iw = fidx[(z * ys + y) * xs + x]
                            if iw < 0 or mem_ptr[iw] == mem_ptr[iw + 1]:
                                continue
                            fd = fbase + dx
                            q = aff[iv, fd - centre] if fd >= centre else aff[iw, centre - fd]
                            if q == UNCOVERED:
                                continue
                            for j in range(mem_ptr[iw], mem_ptr[iw + 1]):
                                b = members[j]
                                if b > a:
                                    acc[b] += q
                                    cnt[b] += 1
            for j in range(cand_ptr[a], cand_ptr[a + 1]):
                b = cand[j]
                total[j] = acc[b]
                count[j] = cnt[b]
                acc[b] = 0
                cnt[b] = 0
    return total, count


def patch_graph(ps: PatchSet, aff: np.ndarray, selected: np.ndarray) -> PatchGraph:
    """Eq. 6 between the selected patches, for every pair with ``Z_paff > 0``."""
    shape = np.asarray(ps.shape, np.int64)
    patch = np.asarray(ps.patch, np.int64)
    t = np.float32(ps.threshold)
    selected = np.asarray(selected, np.int64)
    mem_ptr, members = _pixel_members(selected, ps.val, ps.cpos, ps.fidx, shape, patch, t, len(ps.fpos))
    cand_ptr, cand = _candidates(selected, ps.cpos, shape, patch)
    n_chunks = max(1, 4 * numba.get_num_threads())
    total, count = _patch_affinities(selected, ps.val, ps.cpos, ps.fidx, aff, shape, patch, t, mem_ptr,
                                     members, cand_ptr, cand, n_chunks)
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
    labels = mutex_watershed_clustering(g, weight[pos].astype(np.float64),
                                        graph.uv[~pos].astype(np.uint64).reshape(-1, 2),
                                        (-weight[~pos]).astype(np.float64))
    return labels.astype(np.int64)


@njit(cache=True)
def _render_labels(selected, comp, val, cpos, shape, patch, threshold):
    """Each covered pixel takes the component of its most probable selected patch."""
    zs, ys, xs = shape
    out = np.zeros(zs * ys * xs, np.uint32)
    best = np.full(zs * ys * xs, -1.0, np.float32)
    for s in range(len(selected)):
        for k in range(val.shape[1]):
            v = val[selected[s], k]
            if v > threshold:
                p = _pixel(cpos[selected[s]], k, shape, patch)
                if v > best[p]:
                    best[p] = v
                    out[p] = comp[s] + 1
    return out


@njit(cache=True)
def _render_stack(selected, comp, n_comp, val, cpos, shape, patch, threshold):
    """One plane per component: the union of its patches' foregrounds."""
    zs, ys, xs = shape
    out = np.zeros((n_comp, zs * ys * xs), np.uint32)
    for s in range(len(selected)):
        for k in range(val.shape[1]):
            if val[selected[s], k] > threshold:
                out[comp[s], _pixel(cpos[selected[s]], k, shape, patch)] = comp[s] + 1
    return out


def render(ps: PatchSet, selected: np.ndarray, comp: np.ndarray, output: Literal["labels", "stack"]) -> np.ndarray:
    """Instances from the selected patches and their components.

    Returns
    -------
    (Z, Y, X) ndarray of uint32 (``"labels"``) or (N, Z, Y, X) ndarray of uint32 (``"stack"``, plane ``i``
    holds instance ``i + 1``).
    """
    shape = np.asarray(ps.shape, np.int64)
    patch = np.asarray(ps.patch, np.int64)
    t = np.float32(ps.threshold)
    comp = np.asarray(comp, np.int64)
    if output == "labels":
        return _render_labels(selected, comp, ps.val, ps.cpos, shape, patch, t).reshape(ps.shape)
    n = int(comp.max()) + 1 if len(comp) else 0
    return _render_stack(selected, comp, n, ps.val, ps.cpos, shape, patch, t).reshape((n, *ps.shape))

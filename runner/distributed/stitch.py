"""Stitching: link block-local ids across faces, then one deterministic global id per object.

:func:`match_faces` pairs a block's outer plane with a neighbour's inner plane (the same voxels segmented by
both); :func:`stitch` joins the pairs of all faces into objects and numbers them by their first voxel in
raster order of the whole volume, which is what a whole-volume segmentation relabelled by first appearance
gives. The result is one small lookup per block (local id -> global id): a block is rewritten with its own
lookup only, never with the whole table.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from runner.distributed.block import BlockSummary


@dataclass
class FacePairs:
    """Links found on the face between blocks ``lower`` and ``upper`` (local ids of each, voxel counts)."""

    lower: int
    upper: int
    pairs: np.ndarray  # (k, 2) uint32: lower-block id (core or ghost), upper-block core id
    counts: np.ndarray  # (k,) int64
    disagree: int = 0  # voxels foreground in one block's view and background in the other's


def match_faces(lower: BlockSummary, upper: BlockSummary, axis: int) -> FacePairs:
    """Pair ``lower``'s outer plane along ``axis`` with ``upper``'s inner plane where they overlap."""
    outer, inner = lower.outer[axis], upper.inner[axis]
    assert outer.start[axis] == inner.start[axis], "the planes must lie at the same coordinate"
    a_index, b_index = [], []
    for k in range(len(outer.start)):
        lo = max(outer.start[k], inner.start[k])
        hi = min(outer.stop[k], inner.stop[k])
        if hi <= lo:
            return FacePairs(lower.index, upper.index, np.zeros((0, 2), np.uint32), np.zeros(0, np.int64))
        a_index.append(slice(lo - outer.start[k], hi - outer.start[k]))
        b_index.append(slice(lo - inner.start[k], hi - inner.start[k]))
    a, b = outer.labels[tuple(a_index)].ravel(), inner.labels[tuple(b_index)].ravel()
    both = (a > 0) & (b > 0)
    disagree = int(np.count_nonzero((a > 0) != (b > 0)))
    if not both.any():
        return FacePairs(
            lower.index, upper.index, np.zeros((0, 2), np.uint32), np.zeros(0, np.int64), disagree
        )
    pairs, counts = np.unique(np.stack([a[both], b[both]], axis=1), axis=0, return_counts=True)
    return FacePairs(lower.index, upper.index, pairs.astype(np.uint32), counts.astype(np.int64), disagree)


@dataclass
class Stitching:
    """The result of :func:`stitch`.

    Attributes
    ----------
    lookups : per block, (n+1,) ndarray of uint32 mapping local id -> global id (0 -> 0).
    n_objects : number of objects in the volume.
    links : pairs of block-local ids joined across faces.
    conflicts : face pairings that disagree (one block sees one object where its neighbour sees several).
    clipped : boxes ``(start, stop)`` of objects that reach past the halo of some block.
    disagree : voxels on faces that are foreground in one block's view only.
    """

    lookups: list[np.ndarray]
    n_objects: int
    links: int = 0
    conflicts: int = 0
    clipped: list[tuple[tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    disagree: int = 0


def _mutual_best(face: FacePairs) -> tuple[np.ndarray, int]:
    """Keep the pairs that are each side's largest overlap; the others are conflicts."""
    if not len(face.pairs):
        return face.pairs, 0
    order = np.lexsort((-face.counts,))  # largest overlaps first, ties by position (stable)
    pairs = face.pairs[order]
    best_a: dict[int, int] = {}
    best_b: dict[int, int] = {}
    for i, (x, y) in enumerate(pairs.tolist()):
        best_a.setdefault(x, i)
        best_b.setdefault(y, i)
    keep = [i for i in range(len(pairs)) if best_a[pairs[i, 0]] == i and best_b[pairs[i, 1]] == i]
    return pairs[keep], len(pairs) - len(keep)


def stitch(summaries: list[BlockSummary], faces: list[FacePairs]) -> Stitching:
    """Global ids for all objects of all blocks.

    Parameters
    ----------
    summaries : one per block, in grid order (faces not needed).
    faces : the pairings of every pair of touching blocks.

    Returns
    -------
    Stitching
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    sizes = np.array([s.n + s.n_ghost for s in summaries], np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    n_nodes = int(offsets[-1])
    rows, cols = [], []
    conflicts = disagree = 0
    for face in faces:
        kept, bad = _mutual_best(face)
        conflicts += bad
        disagree += face.disagree
        rows.append(offsets[face.lower] + kept[:, 0].astype(np.int64) - 1)
        cols.append(offsets[face.upper] + kept[:, 1].astype(np.int64) - 1)
    row = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    col = np.concatenate(cols) if cols else np.zeros(0, np.int64)
    graph = coo_matrix((np.ones(len(row), np.int8), (row, col)), shape=(n_nodes, n_nodes))
    _, component = connected_components(graph, directed=False)
    # each component's key: the smallest first-voxel index among its core members (ghost-only: none)
    key = np.full(n_nodes, np.iinfo(np.int64).max, np.int64)
    for s, off in zip(summaries, offsets[:-1], strict=True):
        key[off : off + s.n] = s.first
    comp_key = np.full(int(component.max(initial=-1)) + 1, np.iinfo(np.int64).max, np.int64)
    np.minimum.at(comp_key, component, key)
    present = np.nonzero(comp_key < np.iinfo(np.int64).max)[0]
    global_id = np.zeros(len(comp_key), np.uint32)
    global_id[present[np.argsort(comp_key[present], kind="stable")]] = np.arange(1, len(present) + 1)
    lookups = []
    clipped = []
    for s, off in zip(summaries, offsets[:-1], strict=True):
        lookup = np.zeros(s.n + 1, np.uint32)
        lookup[1:] = global_id[component[off : off + s.n]]
        lookups.append(lookup)
        clipped += [(tuple(s.boxes[i - 1, 0].tolist()), tuple(s.boxes[i - 1, 1].tolist())) for i in s.clipped]
    return Stitching(lookups, len(present), len(row), conflicts, clipped, disagree)


def relabel(labels: np.ndarray, lookup: np.ndarray) -> np.ndarray:
    """A block's core labels ``(*core_shape)`` with local ids -> global ids, through its own ``lookup``."""
    return lookup[labels]

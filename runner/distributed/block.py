"""The work of one block, as a pure function: read the extended region, segment it, keep the core.

:func:`segment_block` knows nothing of Dask: it takes a ``read`` and a ``segment`` callable and returns the
core's labels (local ids ``1..n`` in raster order of first appearance) with a :class:`BlockSummary`, which is
all the stitcher needs: the number of objects, each object's first voxel and box in volume coordinates, the
objects that reach the border of the extended region (a halo too small for them), and two kinds of face
planes:

- *outer* planes, one per upper side with a neighbour: the block's own labels on the first plane past its
  core (inside its halo), widened by one voxel along the other axes so that edge and corner neighbours are
  covered too. Objects seen there that are not in the core get *ghost* ids ``n+1, n+2, ...``.
- *inner* planes, one per lower side with a neighbour: the core labels on the core's first plane.

A neighbour's inner plane and this block's outer plane cover the same voxels, segmented twice; pairing their
ids links an object cut by the face (same object on both sides) while two objects that merely touch across it
stay apart (each block sees them as two objects).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from runner.distributed.grid import Block, BlockGrid
from runner.errors import UserError


@dataclass(frozen=True)
class Face:
    """A plane of labels: ``labels`` has the block's ndim with size 1 along ``axis``; ``start`` is the
    volume coordinate of its first voxel."""

    axis: int
    start: tuple[int, ...]
    labels: np.ndarray

    @property
    def stop(self) -> tuple[int, ...]:
        return tuple(s + n for s, n in zip(self.start, self.labels.shape, strict=True))


@dataclass
class BlockSummary:
    """What the stitcher needs of one block (see the module docstring).

    Attributes
    ----------
    index : the block's index in the grid.
    n : number of objects in the core (local ids ``1..n``).
    n_ghost : ghost ids ``n+1..n+n_ghost`` appear only on outer faces.
    first : (n,) ndarray of int64, volume raster index of each object's first voxel.
    boxes : (n, 2, ndim) ndarray of int64, each object's box (start, stop) in volume coordinates.
    clipped : (k,) ndarray of uint32, local ids of core objects that touch the extended region's border
        inside the volume: the halo is smaller than they are.
    outer, inner : face planes per axis (upper and lower sides with a neighbour).
    skipped : the block was found empty and not segmented.
    """

    index: int
    n: int
    n_ghost: int
    first: np.ndarray
    boxes: np.ndarray
    clipped: np.ndarray
    outer: dict[int, Face] = field(default_factory=dict)
    inner: dict[int, Face] = field(default_factory=dict)
    skipped: bool = False

    def without_faces(self) -> BlockSummary:
        """The small part the driver gathers (faces stay on the workers)."""
        return replace(self, outer={}, inner={})


@dataclass
class BlockOutput:
    """Core labels ``(*core_shape)`` uint32 with local ids, and the block's summary."""

    labels: np.ndarray
    summary: BlockSummary


def segment_block(
    block: Block,
    grid: BlockGrid,
    *,
    read: Callable[[tuple[slice, ...]], np.ndarray],
    segment: Callable[[np.ndarray], np.ndarray],
    is_empty: Callable[[Block], bool] | None = None,
) -> BlockOutput:
    """Segment one block.

    Parameters
    ----------
    block : the block (core and extended region).
    grid : the grid it belongs to (volume shape).
    read : ``read(slices) -> (C, *ext_shape)`` image of the extended region.
    segment : ``segment(image) -> (*ext_shape)`` integer labels, 0 background (ids need not be consecutive);
        a segmenter with ``takes_region = True`` is also told where the block lies: ``region=(ext_start,
        volume_shape)`` (see :meth:`runner.inference.Predictor.predict`).
    is_empty : cheap test run first; an empty block is written as background without reading or segmenting.

    Returns
    -------
    BlockOutput
    """
    ext_shape = tuple(b - a for a, b in zip(block.ext_start, block.ext_stop, strict=True))
    if is_empty is not None and is_empty(block):
        return _empty(block, grid)
    image = read(block.extended)
    if getattr(segment, "takes_region", False):  # predicts the block as the whole volume's pass would
        with_region: Any = segment
        labels = np.asarray(with_region(image, region=(block.ext_start, grid.shape)))
    else:
        labels = np.asarray(segment(image))
    if labels.shape != ext_shape:
        raise UserError(
            f"the segmentation of block {block.index} has shape {labels.shape}, expected {ext_shape}"
        )
    return summarise(block, grid, labels)


def summarise(block: Block, grid: BlockGrid, ext: np.ndarray) -> BlockOutput:
    """Core labels and summary from the labels ``ext`` of the block's extended region."""
    import fastremap

    ext = np.ascontiguousarray(ext)
    if ext.dtype.kind not in "ui" or (ext.dtype.kind == "i" and ext.size and ext.min() < 0):
        raise UserError(f"block {block.index}: labels must be non-negative integers, got {ext.dtype}")
    core_ext = ext[block.core_in_extended]
    core, mapping = fastremap.renumber(core_ext, in_place=False)
    core = core.astype(np.uint32, copy=False)
    mapping = {int(k): int(v) for k, v in mapping.items() if k != 0}
    n = len(mapping)
    first, boxes = _first_and_boxes(core, n, block, grid)
    clipped = _clipped(ext, block, grid, mapping)
    outer, n_ghost = _outer_faces(ext, block, grid, mapping, n)
    inner = {
        axis: Face(axis, block.start, _plane(core, axis, 0))
        for axis in range(grid.ndim)
        if block.start[axis] > 0
    }
    summary = BlockSummary(block.index, n, n_ghost, first, boxes, clipped, outer, inner)
    return BlockOutput(core, summary)


def _empty(block: Block, grid: BlockGrid) -> BlockOutput:
    """A skipped block: background everywhere (its faces are all zeros, so nothing links to it)."""
    ext = np.zeros(tuple(b - a for a, b in zip(block.ext_start, block.ext_stop, strict=True)), np.uint32)
    out = summarise(block, grid, ext)
    out.summary.skipped = True
    return out


def _plane(arr: np.ndarray, axis: int, at: int) -> np.ndarray:
    return np.take(arr, [at], axis=axis)


def _first_and_boxes(core: np.ndarray, n: int, block: Block, grid: BlockGrid):
    from scipy import ndimage

    values, where = np.unique(core.ravel(), return_index=True)
    where = where[values > 0]
    local = np.unravel_index(where, core.shape)
    coords = tuple(c + s for c, s in zip(local, block.start, strict=True))
    first = np.ravel_multi_index(coords, grid.shape).astype(np.int64) if n else np.zeros(0, np.int64)
    boxes = np.zeros((n, 2, grid.ndim), np.int64)
    for i, sl in enumerate(ndimage.find_objects(core, max_label=n)):
        if sl is not None:
            boxes[i, 0] = [s.start + o for s, o in zip(sl, block.start, strict=True)]
            boxes[i, 1] = [s.stop + o for s, o in zip(sl, block.start, strict=True)]
    return first, boxes


def _clipped(ext: np.ndarray, block: Block, grid: BlockGrid, mapping: dict[int, int]) -> np.ndarray:
    """Local ids of core objects found on a border of the extended region that lies inside the volume."""
    seen: set[int] = set()
    for axis in range(grid.ndim):
        if block.ext_start[axis] > 0:
            seen.update(np.unique(_plane(ext, axis, 0)).tolist())
        if block.ext_stop[axis] < grid.shape[axis]:
            seen.update(np.unique(_plane(ext, axis, ext.shape[axis] - 1)).tolist())
    return np.array(sorted(mapping[v] for v in seen if v in mapping), np.uint32)


def _outer_faces(ext: np.ndarray, block: Block, grid: BlockGrid, mapping: dict[int, int], n: int):
    """Outer planes (local and ghost ids) and the number of ghost ids."""
    import fastremap

    raw: dict[int, tuple[tuple[int, ...], np.ndarray]] = {}
    for axis in range(grid.ndim):
        if block.stop[axis] >= grid.shape[axis]:
            continue
        start, index = [], []
        for k in range(grid.ndim):
            if k == axis:
                start.append(block.stop[k])
                index.append(
                    slice(block.stop[k] - block.ext_start[k], block.stop[k] - block.ext_start[k] + 1)
                )
            else:
                lo, hi = max(block.start[k] - 1, 0), min(block.stop[k] + 1, grid.shape[k])
                start.append(lo)
                index.append(slice(lo - block.ext_start[k], hi - block.ext_start[k]))
        raw[axis] = (tuple(start), ext[tuple(index)])
    ghosts = sorted({int(v) for _, p in raw.values() for v in np.unique(p)} - set(mapping) - {0})
    full = {0: 0, **mapping, **{g: n + 1 + i for i, g in enumerate(ghosts)}}
    faces = {
        axis: Face(axis, start, fastremap.remap(plane, full).astype(np.uint32, copy=False))
        for axis, (start, plane) in raw.items()
    }
    return faces, len(ghosts)

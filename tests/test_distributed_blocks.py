"""Blockwise segmentation (pure block function + stitcher, in a plain loop) equals the whole-volume result."""

from __future__ import annotations

import numpy as np
import pytest

from runner.distributed.block import segment_block
from runner.distributed.grid import BlockGrid
from runner.distributed.standin import ValueComponents, touching_objects
from runner.distributed.stitch import match_faces, relabel, stitch
from runner.errors import UserError
from tests._distributed import adjusted_rand_index


def _renumber(labels: np.ndarray) -> np.ndarray:
    import fastremap

    return fastremap.renumber(labels, in_place=False)[0].astype(np.uint32)


def _blockwise(image: np.ndarray, block, halo):
    grid = BlockGrid.create(image.shape, block, halo)
    seg = ValueComponents()
    outs = [
        segment_block(b, grid, read=lambda sl: image[None][(slice(None), *sl)], segment=seg) for b in grid
    ]
    faces = [
        match_faces(outs[b.index].summary, outs[j].summary, axis)
        for b in grid
        for axis, j in grid.upper_neighbours(b)
    ]
    result = stitch([o.summary for o in outs], faces)
    labels = np.zeros(image.shape, np.uint32)
    for b in grid:
        labels[b.core] = relabel(outs[b.index].labels, result.lookups[b.index])
    return labels, result, grid


def _blocks_spanned(ref: np.ndarray, grid: BlockGrid) -> np.ndarray:
    """Per object, the number of blocks it has voxels in."""
    spans = np.zeros(ref.max() + 1, int)
    for b in grid:
        spans[np.unique(ref[b.core])] += 1
    return spans[1:]


CASES = [
    ((150, 170), 24, 120, [(48, 48), (50, 64), (64, 50)]),
    ((48, 56, 52), 14, 70, [(28, 28, 28), (30, 40, 32), (48, 30, 28)]),
]


@pytest.mark.parametrize("shape, size, n, blocks", CASES, ids=["2d", "3d"])
def test_blockwise_equals_whole_volume(shape, size, n, blocks):
    image = touching_objects(shape, n=n, size=size, seed=3)
    corner = np.array(blocks[0], float) - 0.5  # a ball around the corner where 2**ndim blocks meet
    grids = np.ogrid[tuple(slice(0, s) for s in shape)]
    image[sum((g - c) ** 2 for g, c in zip(grids, corner, strict=True)) <= (size / 3) ** 2] = n + 1
    ref = _renumber(ValueComponents()(image[None]))
    touching = np.count_nonzero((ref[1:] != ref[:-1]) & (ref[1:] > 0) & (ref[:-1] > 0))
    assert touching > 50, "the objects must touch each other"
    on_border = set(np.unique(np.concatenate([ref[0].ravel(), ref[-1].ravel()]))) - {0}
    assert on_border, "some objects must lie on the volume border"
    max_span = 0
    for block in blocks:
        labels, result, grid = _blockwise(image, block, (size,) * len(shape))
        assert result.n_objects == ref.max()
        assert np.array_equal(
            labels, ref
        )  # same ids too: the relabel follows the first voxel in raster order
        assert adjusted_rand_index(ref, labels) == pytest.approx(1.0)
        assert not result.clipped and result.conflicts == 0
        max_span = max(max_span, _blocks_spanned(ref, grid).max())
    assert max_span >= 2 ** len(shape)  # objects crossing 1, 2 (and in 3D 3) faces at a corner


def test_touching_objects_of_different_blocks_stay_apart():
    image = np.zeros((20, 20), np.float32)
    image[2:18, 4:10] = 1  # left object ends at x=9 (block face at x=10)
    image[2:18, 10:16] = 2  # right object starts at x=10, touching it
    image[8:12, 12:19] = 2
    labels, result, _ = _blockwise(image, (20, 10), (5, 5))
    assert result.n_objects == 2
    assert len(np.unique(labels[:, :10])) == 2 and set(np.unique(labels[:, 10:])) == {0, 2}


def test_halo_smaller_than_objects_is_reported():
    image = touching_objects((120, 120), n=30, size=40, seed=1)
    _, result, _ = _blockwise(image, (30, 30), (5, 5))
    assert result.clipped, "objects wider than the halo must be reported"


def test_grid_rejects_block_smaller_than_twice_the_halo():
    with pytest.raises(UserError, match="twice the halo"):
        BlockGrid.create((100, 100), (30, 30), (20, 20))
    grid = BlockGrid.create((100, 30), (40, 40), (20, 20))  # axis 1 is not split: no halo needed there
    assert grid.counts == (3, 1)

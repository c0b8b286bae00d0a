"""The thin driver: map :func:`segment_block` over a ``distributed.Client``, stitch, rewrite each block.

Pass 1 segments every block (in a task each) and writes its local ids to a scratch array; face matching runs
next to the data, one task per block and its upper neighbours; the driver gathers only small summaries and
face pairs, stitches, and pass 2 rewrites each block through its own lookup into the output (chunk-aligned:
exactly one task writes each chunk). Tasks are idempotent, so a task retried after a worker died writes the
same chunks again. The driver holds no image data.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from runner.distributed.block import BlockSummary, segment_block
from runner.distributed.grid import BlockGrid
from runner.distributed.stitch import FacePairs, Stitching, match_faces, relabel, stitch
from runner.errors import UserError

RETRIES = 2
"""Extra tries for a task that raised (a worker that died has its tasks rescheduled by Dask itself)."""


@dataclass
class BlockwiseRun:
    """What :func:`run_blockwise` did."""

    n_blocks: int
    n_skipped: int
    n_objects: int
    stitching: Stitching
    seconds: float


def _pass1(index: int, grid: BlockGrid, read, segment, is_empty, scratch) -> BlockSummary:
    block = grid[index]
    out = segment_block(block, grid, read=read, segment=segment, is_empty=is_empty)
    scratch.write(block.core, out.labels)
    return out.summary


def _faces(lower: BlockSummary, axes: list[int], *uppers: BlockSummary) -> list[FacePairs]:
    return [match_faces(lower, up, axis) for axis, up in zip(axes, uppers, strict=True)]


def _small(summary: BlockSummary) -> BlockSummary:
    return summary.without_faces()


def _pass2(index: int, grid: BlockGrid, scratch, sink, lookup: np.ndarray) -> int:
    block = grid[index]
    sink.write(block.core, relabel(scratch.read(block.core), lookup))
    return index


def run_blockwise(
    client,
    grid: BlockGrid,
    *,
    read: Callable[[tuple[slice, ...]], np.ndarray],
    segment: Callable[[np.ndarray], np.ndarray],
    scratch,
    sink,
    is_empty: Callable | None = None,
    progress: bool = True,
    strict: bool = True,
) -> BlockwiseRun:
    """Segment a volume block by block on a Dask cluster and write stitched labels to ``sink``.

    Parameters
    ----------
    client : ``distributed.Client``.
    grid : the blocks.
    read, segment, is_empty : see :func:`runner.distributed.block.segment_block` (picklable).
    scratch : label array for the local ids (``write(region, labels)``, ``read(region)``), chunks = blocks.
    sink : the output label array (``write(region, labels)``), chunks = blocks.
    progress : tqdm bars over the blocks of each pass.
    strict : raise :class:`UserError` before pass 2 when objects reach past the halo or faces conflict.

    Returns
    -------
    BlockwiseRun
    """
    start = time.perf_counter()
    indices = list(range(len(grid)))
    summaries = client.map(
        _pass1,
        indices,
        grid=grid,
        read=read,
        segment=segment,
        is_empty=is_empty,
        scratch=scratch,
        retries=RETRIES,
        key=[f"segment-block-{i}" for i in indices],
    )
    _wait(client, summaries, "segment", progress)
    face_futures = []
    for block in grid:
        neighbours = grid.upper_neighbours(block)
        if neighbours:
            axes = [a for a, _ in neighbours]
            uppers = [summaries[j] for _, j in neighbours]
            face_futures.append(client.submit(_faces, summaries[block.index], axes, *uppers, retries=RETRIES))
    small = client.map(_small, summaries, retries=RETRIES)
    faces = [f for group in client.gather(face_futures) for f in group]
    gathered: list[BlockSummary] = client.gather(small)
    stitching = stitch(gathered, faces)
    if strict:
        _check(stitching, grid)
    written = [
        client.submit(
            _pass2, i, grid, scratch, sink, stitching.lookups[i], retries=RETRIES, key=f"write-block-{i}"
        )
        for i in indices
    ]
    _wait(client, written, "write", progress)
    del summaries, small
    return BlockwiseRun(
        len(grid),
        sum(s.skipped for s in gathered),
        stitching.n_objects,
        stitching,
        time.perf_counter() - start,
    )


def _check(stitching: Stitching, grid: BlockGrid) -> None:
    if stitching.clipped:
        extent = np.max([np.subtract(b, a) for a, b in stitching.clipped], axis=0)
        raise UserError(
            f"{len(stitching.clipped)} object(s) reach past the block halo of "
            f"{','.join(map(str, grid.halo))} voxels (largest seen so far {','.join(map(str, extent))}); "
            "blocks would cut them",
            hint=f"raise --object-size to at least {int(extent.max())}",
        )
    if stitching.conflicts:
        raise UserError(
            f"{stitching.conflicts} object(s) are segmented differently by neighbouring blocks",
            hint="raise --object-size (the halo) so that each block sees whole objects",
        )


def _wait(client, futures: list, what: str, progress: bool) -> None:
    """Wait for ``futures`` with a progress bar; the first failure is raised (workers that kept dying on a
    task become a :class:`UserError` about memory)."""
    from distributed import KilledWorker, as_completed

    bar: Any = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(futures), desc=f"{what} blocks", unit="block", dynamic_ncols=True)
    try:
        for future in as_completed(futures):
            if future.status == "error":
                try:
                    future.result()  # raises the task's exception
                except KilledWorker:
                    raise UserError(
                        f"the workers died while running {future.key} (out of memory?)",
                        hint="give them more with --worker-memory, or use a smaller --block or --memory-mb",
                    ) from None
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()

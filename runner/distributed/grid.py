"""The block grid of a volume: cores that tile it without overlap, each read with a halo around it.

A block's *core* is the region whose labels it writes; its *extended* region (core + halo, clipped to the
volume) is what it reads and segments. Cores are aligned to the output chunks, so each output chunk is
written by exactly one block.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

from runner.errors import UserError


@dataclass(frozen=True)
class Block:
    """One block of a :class:`BlockGrid` (coordinates in voxels of the full volume, stop exclusive)."""

    index: int
    position: tuple[int, ...]
    start: tuple[int, ...]
    stop: tuple[int, ...]
    ext_start: tuple[int, ...]
    ext_stop: tuple[int, ...]

    @property
    def core(self) -> tuple[slice, ...]:
        """Slices of the core in the volume."""
        return tuple(slice(a, b) for a, b in zip(self.start, self.stop, strict=True))

    @property
    def extended(self) -> tuple[slice, ...]:
        """Slices of the extended region (core + halo, clipped) in the volume."""
        return tuple(slice(a, b) for a, b in zip(self.ext_start, self.ext_stop, strict=True))

    @property
    def core_in_extended(self) -> tuple[slice, ...]:
        """Slices of the core inside the extended region."""
        return tuple(
            slice(a - e, b - e) for a, b, e in zip(self.start, self.stop, self.ext_start, strict=True)
        )

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(b - a for a, b in zip(self.start, self.stop, strict=True))


@dataclass(frozen=True)
class BlockGrid:
    """Blocks of ``block`` voxels (the last ones smaller) with ``halo`` voxels of context per side.

    Parameters
    ----------
    shape : spatial shape of the volume, ``((Z,) Y, X)``.
    block : core size per axis.
    halo : context per side and axis.
    """

    shape: tuple[int, ...]
    block: tuple[int, ...]
    halo: tuple[int, ...]

    @classmethod
    def create(cls, shape: Sequence[int], block: Sequence[int], halo: Sequence[int]) -> BlockGrid:
        """A grid after checking the block against the halo (bad values raise :class:`UserError`).

        Axes the volume does not need to split (block >= volume) need no halo; along split axes the block
        must be at least twice the halo, otherwise more than half of each read is context.
        """
        shape, block, halo = tuple(map(int, shape)), tuple(map(int, block)), tuple(map(int, halo))
        if not len(shape) == len(block) == len(halo):
            raise UserError(
                f"--block and the halo need {len(shape)} values for a {len(shape)}D volume, "
                f"got block {block} and halo {halo}"
            )
        if any(b < 1 for b in block):
            raise UserError(f"--block must be positive, got {block}")
        block = tuple(min(b, n) for b, n in zip(block, shape, strict=True))
        # faces are matched on the first plane past a core: split axes need one voxel of context
        halo = tuple(max(h, 1) if b < n else h for b, h, n in zip(block, halo, shape, strict=True))
        small = [
            f"axis {k}: block {b} < 2 x halo {h}"
            for k, (b, h, n) in enumerate(zip(block, halo, shape, strict=True))
            if b < n and b < 2 * h
        ]
        if small:
            need = ",".join(str(max(b, 2 * h)) for b, h in zip(block, halo, strict=True))
            raise UserError(
                f"the block is smaller than twice the halo ({'; '.join(small)})",
                hint=f"use --block {need} or larger, or a smaller --object-size",
            )
        return cls(shape, block, halo)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def counts(self) -> tuple[int, ...]:
        """Blocks per axis."""
        return tuple(math.ceil(n / b) for n, b in zip(self.shape, self.block, strict=True))

    def __len__(self) -> int:
        return math.prod(self.counts)

    def position_index(self, position: Sequence[int]) -> int | None:
        """Flat index of the block at grid ``position``, or None outside the grid."""
        if any(p < 0 or p >= c for p, c in zip(position, self.counts, strict=True)):
            return None
        index = 0
        for p, c in zip(position, self.counts, strict=True):
            index = index * c + p
        return index

    def __getitem__(self, index: int) -> Block:
        position = []
        rest = index
        for c in reversed(self.counts):
            position.append(rest % c)
            rest //= c
        pos = tuple(reversed(position))
        start = tuple(p * b for p, b in zip(pos, self.block, strict=True))
        stop = tuple(min(s + b, n) for s, b, n in zip(start, self.block, self.shape, strict=True))
        ext_start = tuple(max(s - h, 0) for s, h in zip(start, self.halo, strict=True))
        ext_stop = tuple(min(s + h, n) for s, h, n in zip(stop, self.halo, self.shape, strict=True))
        return Block(index, pos, start, stop, ext_start, ext_stop)

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def upper_neighbours(self, block: Block) -> list[tuple[int, int]]:
        """Blocks that touch ``block`` across its upper side along some axis (faces, edges and corners).

        Returns ``(axis, index)`` pairs: the neighbour lies one step up along ``axis`` and within one step
        along the axes after it (before it, it lies at the same grid row, so every touching pair of blocks
        is listed exactly once, from the block with the lower coordinate along the first axis they differ).
        """
        found = []
        for axis in range(self.ndim):
            ranges = [
                (p,) if k < axis else (p + 1,) if k == axis else (p - 1, p, p + 1)
                for k, p in enumerate(block.position)
            ]
            for pos in itertools.product(*ranges):
                idx = self.position_index(pos)
                if idx is not None:
                    found.append((axis, idx))
        return found

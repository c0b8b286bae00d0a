"""Tiling and stitching as pure functions: plan tiles for a size rule, run the per-tile work, crop and stitch.

Conventions. Arrays are ``(C, *spatial)`` (one image) or ``(B, C, *spatial)`` (a batch of tiles). Along each
spatial axis the image (size ``S``) is padded by ``margin`` pixels of context at the start; tile ``i`` starts
at
``i * stride`` in padded coordinates and is ``tile`` pixels long; it *owns* the image pixels
``[i*stride, min((i+1)*stride, S))``. Every image pixel is owned by exactly one tile and is copied from that
tile's output, ``margin`` or more pixels away from the tile border: with ``margin`` at least the network's
receptive-field radius the stitched result equals one pass over the whole (padded) image. Strides are
multiples of the axis granularity (the model's size step, i.e. its pooling factor), so pooling layers see
every tile in the same phase as the whole image.

Outputs may be scaled (``ratio`` output pixels per input pixel), may come out smaller than the tile (models
that crop, ``crop`` pixels per side) and may carry a ``halo`` to discard; :class:`OutputGeometry` describes
that.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal, cast

import numpy as np

from runner.errors import UserError
from runner.inference.sizes import SizeRule


@dataclass(frozen=True)
class AxisPlan:
    """How one spatial axis is cut into tiles."""

    size: int
    """Image size along the axis (input pixels)."""
    tile: int
    """Tile size (a valid model input size)."""
    stride: int
    """Distance between tile starts; also the length of the image region each tile owns."""
    margin: int
    """Context pixels before (and at least after) the owned region of every tile."""
    n: int
    """Number of tiles."""

    @property
    def pad_before(self) -> int:
        return self.margin

    @property
    def pad_after(self) -> int:
        """Padding after the image so the last tile is complete."""
        return (self.n - 1) * self.stride + self.tile - self.margin - self.size

    def starts(self) -> list[int]:
        """Tile starts in padded coordinates."""
        return [i * self.stride for i in range(self.n)]


@dataclass(frozen=True)
class TilePlan:
    """Tiles over all spatial axes (their product)."""

    axes: tuple[AxisPlan, ...]

    @property
    def tile_shape(self) -> tuple[int, ...]:
        return tuple(a.tile for a in self.axes)

    @property
    def n_tiles(self) -> int:
        return math.prod(a.n for a in self.axes)

    @property
    def pad_width(self) -> list[tuple[int, int]]:
        return [(a.pad_before, a.pad_after) for a in self.axes]

    def tile_indices(self) -> Iterator[tuple[int, ...]]:
        """Per-axis tile indices in C order."""
        return itertools.product(*(range(a.n) for a in self.axes))


@dataclass(frozen=True)
class OutputGeometry:
    """How one output tensor's spatial axes relate to the input tile (one entry per spatial axis)."""

    ratio: tuple[Fraction, ...]
    """Output pixels per input pixel."""
    crop: tuple[Fraction, ...] = ()
    """Output pixels the model itself removed per side (``-offset / 2``); empty = none."""
    halo: tuple[int, ...] = ()
    """Output pixels to discard per side (the rdf's halo); empty = none."""

    def crop_at(self, k: int) -> Fraction:
        return self.crop[k] if self.crop else Fraction(0)

    def halo_at(self, k: int) -> int:
        return self.halo[k] if self.halo else 0

    def margin_needed(self, k: int) -> int:
        """Input context (pixels per side) so that cropping ``crop + halo`` leaves the owned region intact."""
        return math.ceil((self.crop_at(k) + self.halo_at(k)) / self.ratio[k])

    def out_size(self, size: int, k: int) -> int:
        """Output length covering an image of ``size`` input pixels."""
        return math.floor(size * self.ratio[k])


def _ceil_to(value: int, q: int) -> int:
    return -(-value // q) * q


def plan_axis(
    *, size: int, rule: SizeRule, margin: int, max_tile: int | None = None, granularity: int = 1
) -> AxisPlan:
    """Plan the tiles along one axis.

    Parameters
    ----------
    size : image size along the axis.
    rule : the model's size rule for this input axis.
    margin : context pixels needed on each side of the owned region.
    max_tile : largest tile to use (None: the whole axis in one tile if the rule allows).
    granularity : tile starts are multiples of this (the pooling factor).

    Raises
    ------
    UserError
        When no valid tile leaves room for the margin (e.g. a fixed size smaller than twice the halo).
    """
    q = max(int(granularity), 1)
    whole = rule.smallest_valid_at_least(size + 2 * margin)
    if whole is not None and (max_tile is None or whole <= max_tile):
        return AxisPlan(size=size, tile=whole, stride=_ceil_to(size, q), margin=margin, n=1)
    fixed = rule.size if rule.kind == "fixed" else None
    limit = max_tile if max_tile is not None else (fixed if fixed is not None else size + 2 * margin)
    biggest = rule.largest_valid_at_most(limit)
    if biggest is None:
        biggest = rule.smallest_valid_at_least(limit)
    stride0 = ((biggest - 2 * margin) // q) * q if biggest is not None else 0
    if stride0 <= 0:
        raise UserError(
            f"a tile of {biggest} pixels leaves no room for a margin of {margin} pixels on each side "
            f"(size rule {rule.describe()}, step {q})",
            hint="use a larger --tile or a smaller --halo",
        )
    n = math.ceil(size / stride0)
    stride = min(_ceil_to(math.ceil(size / n), q), stride0)
    tile = rule.smallest_valid_at_least(stride + 2 * margin)
    assert tile is not None, "`biggest` is a valid size of at least stride + 2 * margin"
    return AxisPlan(size=size, tile=tile, stride=stride, margin=margin, n=n)


def plan_tiles(
    *,
    shape: Sequence[int],
    rules: Sequence[SizeRule],
    margins: Sequence[int],
    max_tile: Sequence[int | None] | None = None,
    granularity: Sequence[int] | None = None,
) -> TilePlan:
    """Plan tiles for an image of spatial ``shape`` (one rule, margin, max tile and granularity per axis)."""
    nd = len(shape)
    max_tile = list(max_tile) if max_tile is not None else [None] * nd
    granularity = list(granularity) if granularity is not None else [r.granularity for r in rules]
    return TilePlan(
        tuple(
            plan_axis(size=int(s), rule=r, margin=int(m), max_tile=t, granularity=g)
            for s, r, m, t, g in zip(shape, rules, margins, max_tile, granularity, strict=True)
        )
    )


def _owned(
    plan: TilePlan, idx: tuple[int, ...], geometry: OutputGeometry
) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
    """(slices into the tile output, slices into the stitched output) of what tile ``idx`` contributes."""
    src, dst = [], []
    for k, (a, i) in enumerate(zip(plan.axes, idx, strict=True)):
        r, c = geometry.ratio[k], geometry.crop_at(k)
        lo = math.floor(i * a.stride * r)
        hi = geometry.out_size(min((i + 1) * a.stride, a.size), k)
        tile_origin = (i * a.stride - a.margin) * r + c  # output coordinate of the tile output's first pixel
        j = lo - tile_origin
        if j.denominator != 1:
            raise UserError(
                f"output pixels do not align with input pixels (ratio {r}, crop {c}); "
                "this model cannot be tiled",
                hint="run it on whole images with --tile whole",
            )
        src.append(slice(int(j), int(j) + hi - lo))
        dst.append(slice(lo, hi))
    return tuple(src), tuple(dst)


def run_tiled(
    inputs: Sequence,
    *,
    forward: Callable[[list], list],
    plan: TilePlan,
    outputs: Sequence[OutputGeometry],
    batch_size: int = 1,
    stack: Callable = np.stack,
    alloc: Callable | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> list:
    """Run ``forward`` over the tiles of already padded inputs and stitch the outputs.

    Parameters
    ----------
    inputs : per model input, the padded image ``(C, *padded_spatial)`` (pad with ``plan.pad_width``).
    forward : the per-tile work: ``forward([batch_in0, batch_in1, ...]) -> [batch_out0, ...]`` with batches
        ``(B, C, *tile)``; returns ``(B, C_out, *tile_out)`` per output.
    plan : from :func:`plan_tiles`.
    outputs : one :class:`OutputGeometry` per output of ``forward``.
    batch_size : tiles per call of ``forward``.
    stack : joins tiles into a batch (``np.stack``; ``torch.stack`` for tensors on a GPU).
    alloc : ``alloc(shape, like) -> array`` for the stitched outputs (default: numpy empty of ``like``'s
    dtype).
    on_batch : called with the number of tiles done after each batch (progress bars).

    Returns
    -------
    list
        Per output, ``(C_out, *out_spatial)`` covering the unpadded image.
    """
    sizes = [a.size for a in plan.axes]
    results: list = [None] * len(outputs)
    indices = list(plan.tile_indices())
    for b0 in range(0, len(indices), max(int(batch_size), 1)):
        chunk = indices[b0 : b0 + batch_size]
        batch = []
        for arr in inputs:
            tiles = [arr[(slice(None), *_tile_slices(plan, idx))] for idx in chunk]
            batch.append(stack(tiles))
        outs = forward(batch)
        for o, (geometry, out) in enumerate(zip(outputs, outs, strict=False)):
            if results[o] is None:
                shape = (out.shape[1], *(geometry.out_size(s, k) for k, s in enumerate(sizes)))
                results[o] = alloc(shape, out) if alloc is not None else np.empty(shape, dtype=out.dtype)
            for t, idx in enumerate(chunk):
                src, dst = _owned(plan, idx, geometry)
                results[o][(slice(None), *dst)] = out[(t, slice(None), *src)]
        if on_batch is not None:
            on_batch(len(chunk))
    return results


def _tile_slices(plan: TilePlan, idx: tuple[int, ...]) -> tuple[slice, ...]:
    return tuple(slice(i * a.stride, i * a.stride + a.tile) for a, i in zip(plan.axes, idx, strict=True))


_PadMode = Literal["symmetric", "reflect", "edge", "constant"]


def pad_image(
    image: np.ndarray, plan: TilePlan, *, mode: str = "symmetric", value: float = 0.0
) -> np.ndarray:
    """Pad ``(C, *spatial)`` by the plan's margins (``symmetric``, ``reflect``, ``edge``, ``constant``)."""
    width = [(0, 0), *plan.pad_width]
    if all(p == (0, 0) for p in width):
        return image
    if mode == "constant":
        return np.pad(image, width, mode="constant", constant_values=value)
    return np.pad(image, width, mode=cast(_PadMode, mode))


CALL_COST_VOXELS = 32**3
"""Fixed cost of one forward call, in voxel-equivalents, when comparing tilings (favours fewer tiles)."""
MAX_CANDIDATES = 48


def _axis_candidates(size: int, rule: SizeRule, margin: int, q: int) -> list[AxisPlan]:
    """Distinct axis plans for tiles from the smallest useful one up to the whole axis."""
    whole = plan_axis(size=size, rule=rule, margin=margin, granularity=q)
    lo = rule.smallest_valid_at_least(2 * margin + q) or whole.tile
    sizes: list[int] = []
    t: int | None = lo
    while t is not None and t < whole.tile:
        sizes.append(t)
        t = rule.smallest_valid_at_least(t + 1)
    if len(sizes) > MAX_CANDIDATES:
        sizes = [sizes[round(i * (len(sizes) - 1) / (MAX_CANDIDATES - 1))] for i in range(MAX_CANDIDATES)]
    plans = {whole.tile: whole}
    for t in sizes:
        try:
            p = plan_axis(size=size, rule=rule, margin=margin, max_tile=t, granularity=q)
        except UserError:
            continue
        plans.setdefault(p.tile, p)
    return list(plans.values())


def choose_tile(
    shape: Sequence[int], rules, margin: Sequence[int], budget_voxels: int, granularity: Sequence[int]
) -> list[int]:
    """The tile shape that processes the fewest voxels (tiles x tile volume, plus a fixed cost per tile)
    among those whose volume fits ``budget_voxels``; the smallest tiles when none fits.

    Parameters
    ----------
    shape : spatial image shape.
    rules, margin, granularity : per axis, as for :func:`plan_tiles`.
    budget_voxels : largest tile volume (the memory budget divided by the bytes one voxel needs).
    """
    per_axis = [
        _axis_candidates(int(s), r, int(m), int(q))
        for s, r, m, q in zip(shape, rules, margin, granularity, strict=True)
    ]
    best: Sequence[AxisPlan] | None = None
    best_cost = math.inf
    for combo in itertools.product(*per_axis):
        volume = math.prod(p.tile for p in combo)
        if volume > budget_voxels:
            continue
        n = math.prod(p.n for p in combo)
        cost = n * (volume + CALL_COST_VOXELS)
        if cost < best_cost:
            best, best_cost = combo, cost
    if best is None:
        best = [min(c, key=lambda p: p.tile) for c in per_axis]
    return [p.tile for p in best]

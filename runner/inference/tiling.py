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

import functools
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
    """How one spatial axis is cut into tiles.

    The image (``size`` pixels) is padded into an *extent* of ``length`` pixels, ``pad_before`` of them
    before the image. Tiles lie inside the extent: tile ``i`` starts at ``min(i * stride, length - tile)``.
    Tile ``i`` owns the extent pixels ``[i * stride + margin, (i + 1) * stride + margin)``, the first tile
    from 0 and the last up to ``length``, so every owned pixel has ``margin`` pixels of context inside its
    tile except at the two ends of the extent, where the network sees the extent's own border, as a pass over
    the whole extent does. With ``n == 1`` the whole extent is one tile.
    """

    size: int
    """Image size along the axis (input pixels)."""
    tile: int
    """Tile size (a valid model input size)."""
    stride: int
    """Distance between tile starts (a multiple of the axis granularity)."""
    margin: int
    """Context pixels on each side of every owned region between two tiles."""
    n: int
    """Number of tiles."""
    pad_before: int
    """Padding before the image (the extent starts ``pad_before`` pixels before the image)."""
    length: int
    """Length of the padded extent the tiles cover."""

    @property
    def pad_after(self) -> int:
        """Padding after the image so the extent is complete."""
        return self.length - self.size - self.pad_before

    def starts(self) -> list[int]:
        """Tile starts in extent (padded) coordinates."""
        return [min(i * self.stride, self.length - self.tile) for i in range(self.n)]

    def owned(self, i: int) -> tuple[int, int]:
        """The image pixels ``[lo, hi)`` tile ``i`` contributes (image coordinates, may be empty)."""
        lo = 0 if i == 0 else i * self.stride + self.margin
        hi = self.length if i == self.n - 1 else (i + 1) * self.stride + self.margin
        return (
            min(max(lo - self.pad_before, 0), self.size),
            min(max(hi - self.pad_before, 0), self.size),
        )


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


def _one_pass(size: int, tile: int, margin: int, extend: int, align: int) -> AxisPlan:
    """The whole (extended) image as one tile of ``tile`` pixels, centred like bioimageio.core's pad_to."""
    extra = (tile - size - 2 * extend) // 2
    before = extend + (extra // align) * align
    return AxisPlan(size=size, tile=tile, stride=tile, margin=margin, n=1, pad_before=before, length=tile)


def plan_axis(
    *,
    size: int,
    rule: SizeRule,
    margin: int,
    max_tile: int | None = None,
    granularity: int = 1,
    extend: int | None = None,
    align: int = 1,
) -> AxisPlan:
    """Plan the tiles along one axis (see :class:`AxisPlan`).

    Parameters
    ----------
    size : image size along the axis.
    rule : the model's size rule for this input axis.
    margin : context pixels needed on each side of the owned region between two tiles.
    max_tile : largest tile to use (None: the whole axis in one tile if the rule allows).
    granularity : tile starts are multiples of this (the pooling factor).
    extend : pixels the image is extended by on each side before any size-rule padding (the ``pad`` border
        policy extends by the margin, the ``image`` policy by what the model crops itself); default
        ``margin``.
    align : padding before the image is a multiple of this (the output scale's denominator, so output pixels
        stay on the image's grid).

    Raises
    ------
    UserError
        When no valid tile leaves room for the margin (e.g. a fixed size smaller than twice the halo).
    """
    q = max(int(granularity), 1)
    e = margin if extend is None else int(extend)
    ext = size + 2 * e
    whole = rule.smallest_valid_at_least(ext)
    if whole is not None and (max_tile is None or whole <= max_tile):
        return _one_pass(size, whole, margin, e, align)
    fixed = rule.size if rule.kind == "fixed" else None
    limit = max_tile if max_tile is not None else (fixed if fixed is not None else ext)
    biggest = rule.largest_valid_at_most(limit)
    if biggest is None:
        biggest = rule.smallest_valid_at_least(limit)
    if biggest is not None and whole is not None and ext <= biggest:
        return _one_pass(size, whole, margin, e, align)  # no valid tile below max_tile: the smallest one
    stride0 = ((biggest - 2 * margin) // q) * q if biggest is not None else 0
    if biggest is None or stride0 <= 0:
        raise UserError(
            f"a tile of {biggest} pixels leaves no room for a margin of {margin} pixels on each side "
            f"(size rule {rule.describe()}, step {q})",
            hint="use a larger --tile or a smaller --halo",
        )
    n = 1 + math.ceil((ext - biggest) / stride0)
    stride = min(_ceil_to(math.ceil((ext - biggest) / (n - 1)), q), stride0)
    tile = rule.smallest_valid_at_least(stride + 2 * margin) or biggest
    if (n - 1) * stride < _ceil_to(max(ext - tile, 0), q):  # the balanced tiles fall short: the largest ones
        stride, tile = stride0, biggest
    length = tile + _ceil_to(ext - tile, q)
    before = e + (((length - ext) // 2) // align) * align
    return AxisPlan(size=size, tile=tile, stride=stride, margin=margin, n=n, pad_before=before, length=length)


def plan_tiles(
    *,
    shape: Sequence[int],
    rules: Sequence[SizeRule],
    margins: Sequence[int],
    max_tile: Sequence[int | None] | None = None,
    granularity: Sequence[int] | None = None,
    extend: Sequence[int] | None = None,
    align: Sequence[int] | None = None,
) -> TilePlan:
    """Plan tiles for an image of spatial ``shape``: per axis, the arguments of :func:`plan_axis`."""
    nd = len(shape)
    max_tile = list(max_tile) if max_tile is not None else [None] * nd
    granularity = list(granularity) if granularity is not None else [r.granularity for r in rules]
    ext = list(extend) if extend is not None else list(margins)
    aligns = list(align) if align is not None else [1] * nd
    return TilePlan(
        tuple(
            plan_axis(size=int(s), rule=r, margin=int(m), max_tile=t, granularity=g, extend=int(x), align=a)
            for s, r, m, t, g, x, a in zip(
                shape, rules, margins, max_tile, granularity, ext, aligns, strict=True
            )
        )
    )


def _owned(
    plan: TilePlan, idx: tuple[int, ...], geometry: OutputGeometry
) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
    """(slices into the tile output, slices into the stitched output) of what tile ``idx`` contributes."""
    src, dst = [], []
    for k, (a, i) in enumerate(zip(plan.axes, idx, strict=True)):
        r, c = geometry.ratio[k], geometry.crop_at(k)
        lo_in, hi_in = a.owned(i)
        lo = geometry.out_size(lo_in, k) if i > 0 else 0
        hi = geometry.out_size(hi_in, k) if i < a.n - 1 else geometry.out_size(a.size, k)
        hi = max(hi, lo)
        tile_origin = (a.starts()[i] - a.pad_before) * r + c  # output coordinate of the tile output's pixel 0
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
    return tuple(slice(a.starts()[i], a.starts()[i] + a.tile) for a, i in zip(plan.axes, idx, strict=True))


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


def _axis_candidates(
    size: int, rule: SizeRule, margin: int, q: int, extend: int, align: int
) -> list[AxisPlan]:
    """Distinct axis plans for tiles from the smallest useful one up to the whole axis."""
    plan = functools.partial(
        plan_axis, size=size, rule=rule, margin=margin, granularity=q, extend=extend, align=align
    )
    whole = plan()
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
            p = plan(max_tile=t)
        except UserError:
            continue
        plans.setdefault(p.tile, p)
    return list(plans.values())


def choose_tile(
    shape: Sequence[int],
    rules,
    margin: Sequence[int],
    budget_voxels: int,
    granularity: Sequence[int],
    *,
    extend: Sequence[int] | None = None,
    align: Sequence[int] | None = None,
    fewest_tiles: bool = False,
) -> list[int]:
    """The tile shape that processes the fewest voxels (tiles x tile volume, plus a fixed cost per tile)
    among those whose volume fits ``budget_voxels``; the smallest tiles when none fits.

    Parameters
    ----------
    shape : spatial image shape.
    rules, margin, granularity, extend, align : per axis, as for :func:`plan_tiles`.
    budget_voxels : largest tile volume (the memory budget divided by the bytes one voxel needs).
    fewest_tiles : prefer the fewest, largest tiles that fit (networks with global operations, whose outputs
        depend on the whole tile: the larger the tile, the closer to a whole-image pass).
    """
    nd = len(shape)
    ext = list(extend) if extend is not None else list(margin)
    aligns = list(align) if align is not None else [1] * nd
    per_axis = [
        _axis_candidates(int(s), r, int(m), int(q), int(x), int(a))
        for s, r, m, q, x, a in zip(shape, rules, margin, granularity, ext, aligns, strict=True)
    ]
    best: Sequence[AxisPlan] | None = None
    best_cost: tuple[float, ...] = (math.inf,)
    for combo in itertools.product(*per_axis):
        volume = math.prod(p.tile for p in combo)
        if volume > budget_voxels:
            continue
        n = math.prod(p.n for p in combo)
        work = n * (volume + CALL_COST_VOXELS)
        cost = (n, work) if fewest_tiles else (work,)
        if cost < best_cost:
            best, best_cost = combo, cost
    if best is None:
        best = [min(c, key=lambda p: p.tile) for c in per_axis]
    return [p.tile for p in best]

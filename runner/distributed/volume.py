"""``runner predict PKG --input big.ome.zarr --output out.ome.zarr --cluster local:N``: a volume larger than
memory, predicted and segmented block by block on a Dask cluster.

Each block is read with a halo of the network's margin plus the largest object (``--object-size``), predicted
and post-processed by the package (:class:`runner.distributed.model.PackageSegmenter`), stitched
(:mod:`runner.distributed.stitch`) and written to ``labels/instances`` of an OME-Zarr (NGFF version of the
input; a plain zarr array when the output is not ``*.ome.zarr``). The output is assembled in a hidden sibling
folder and renamed into place at the end: an interrupted run leaves nothing a rerun would take for a result.
"""

from __future__ import annotations

import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from runner.errors import UserError

DEFAULT_BLOCK = {2: 2048, 3: 128}
DEFAULT_OBJECT_SIZE = 64
STATS_FULL_MB = 512
"""Statistics are computed on the full-resolution volume up to this size, else on the coarsest level."""


@dataclass
class VolumeReport:
    """What :func:`predict_volume` did."""

    output: Path
    n_blocks: int
    n_skipped: int
    n_objects: int
    halo: tuple[int, ...]
    block: tuple[int, ...]
    seconds: float
    cluster: str = ""
    peak_mib: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class LowresEmpty:
    """Cheap test: a block is empty when its region at the coarsest level is at most ``threshold``."""

    volume: object
    threshold: float

    def __call__(self, block) -> bool:
        low = self.volume.read_lowres(block.extended)  # type: ignore[attr-defined]
        return low is not None and low.size > 0 and float(low.max()) <= self.threshold


def predict_volume(
    package: str | Path,
    source: str | Path,
    output: str | Path,
    *,
    options,
    cluster: str = "local:1",
    block: tuple[int, ...] | None = None,
    object_size: int | None = None,
    skip_below: float | str | None = "auto",
    overwrite: bool = False,
    memory_limit: str | None = None,
) -> VolumeReport:
    """Segment a zarr/OME-Zarr volume block by block (see the module docstring).

    Parameters
    ----------
    package : the model package.
    source : OME-Zarr image or plain zarr array.
    output : ``*.ome.zarr`` (NGFF labels group) or another ``*.zarr`` (plain array).
    options : :class:`runner.inference.batch.PredictOptions`.
    cluster : ``local:N`` or a scheduler address.
    block : core size per spatial axis (default: 2048 in 2D, 128 in 3D, at least twice the halo).
    object_size : largest object diameter in voxels (default: from a ``max_size`` param, else 64).
    skip_below : blocks whose coarsest-level region is at most this are background; ``"auto"``: the
        coarsest level's minimum; None: never skip.
    overwrite : replace an existing output.
    memory_limit : per-worker memory limit of a local cluster (e.g. ``"2GiB"``).
    """
    from runner.distributed.cluster import connect, describe
    from runner.distributed.engine import run_blockwise
    from runner.distributed.model import PackageSegmenter, check_params
    from runner.distributed.standin import peak_rss_mib
    from runner.inference.batch import resolve_postprocessing
    from runner.inference.package import load_package
    from runner.io.atomic import atomic_path
    from runner.io.ome_zarr import create_labels, open_volume

    start = time.perf_counter()
    output = _check_output(Path(output), overwrite)
    volume = open_volume(source, axes=options.axes)
    pkg = load_package(package)
    _check_model(pkg, volume)
    post = resolve_postprocessing(pkg, options)
    if post.choice is None:
        raise UserError("blockwise prediction writes instance labels", hint="drop --no-postprocess")
    check_params(post)
    if options.tta is None:
        options = options.model_copy(update={"tta": pkg.test_time_augmentation})
    grid = _grid(pkg, options, post, volume, block, object_size)
    stats = _statistics(pkg, volume, options)
    resolution = tuple(options.resolution) if options.resolution else volume.scale
    segment = PackageSegmenter(str(Path(package).resolve()), options.model_dump(), stats, resolution)
    is_empty = _empty_test(volume, skip_below)
    ome = output.name.lower().endswith(".ome.zarr")
    with connect(cluster, memory_limit=memory_limit) as client, atomic_path(output) as tmp:
        sinks = create_labels(
            tmp,
            volume.spatial_shape,
            chunks=grid.block,
            axes=volume.spatial_axes,
            scale=volume.scale,
            ngff=(volume.ngff if volume.ngff in ("0.4", "0.5") else "0.4") if ome else None,
            source=Path(source) if volume.ngff else None,
            levels=_levels(volume.spatial_shape, volume.spatial_axes) if ome else 1,
        )
        scratch = create_labels(
            tmp / "_scratch.zarr",
            volume.spatial_shape,
            chunks=grid.block,
            axes=volume.spatial_axes,
            ngff=None,
        )[0]
        where = describe(client)
        if options.progress:
            print(f"cluster: {where}; {len(grid)} block(s) of {grid.block} with halo {grid.halo}", flush=True)
        run = run_blockwise(
            client,
            grid,
            read=volume.read,
            segment=segment,
            scratch=scratch,
            sink=sinks[0],
            is_empty=is_empty,
            progress=options.progress,
        )
        downsample_levels(client, sinks, volume.spatial_axes, chunks=grid.block)
        peaks = client.run(peak_rss_mib)
        shutil.rmtree(tmp / "_scratch.zarr")
    return VolumeReport(
        output,
        run.n_blocks,
        run.n_skipped,
        run.n_objects,
        grid.halo,
        grid.block,
        time.perf_counter() - start,
        where,
        peaks,
    )


def _grid(pkg, options, post, volume, block, object_size):
    """Blocks with a halo of the network's margin plus the largest object."""
    from runner.distributed.grid import BlockGrid

    size = object_size or _object_size(post, volume) or DEFAULT_OBJECT_SIZE
    ndim = len(volume.spatial_shape)
    halo = tuple(m + size for m in _network_margin(pkg, options, ndim))
    block = tuple(block) if block else tuple(max(DEFAULT_BLOCK[ndim], 2 * h) for h in halo)
    return BlockGrid.create(volume.spatial_shape, block * ndim if len(block) == 1 else block, halo)


def _check_output(output: Path, overwrite: bool) -> Path:
    if output.suffix.lower() != ".zarr":
        raise UserError(
            "a zarr input needs a zarr output", path=output, hint="name it out.ome.zarr (or out.zarr)"
        )
    if output.exists() and not overwrite:
        raise UserError("the output already exists", path=output, hint="pass --overwrite to replace it")
    if not output.parent.exists():
        raise UserError(
            "the output's parent folder does not exist", path=output.parent, hint="create it first"
        )
    return output


def _check_model(pkg, volume) -> None:
    from runner.inference.geometry import build_geometry

    if len(pkg.inputs) != 1:
        raise UserError("blockwise prediction supports models with one input", path=pkg.source)
    geo = build_geometry(pkg)
    if geo.ndim != len(volume.spatial_shape):
        raise UserError(
            f"the model takes {geo.ndim}D images ({'/'.join(geo.letters)}) but the zarr volume has axes "
            f"{volume.axes!r} of shape {volume.shape}",
            path=volume.path,
            hint="pass --axes if the axes were read wrongly",
        )
    n = pkg.inputs[0].n_channels
    if n is not None and n != volume.channels:
        raise UserError(
            f"the volume has {volume.channels} channel(s), the model takes {n}",
            path=volume.path,
            hint="pass --axes if a channel axis was misread",
        )


def _network_margin(pkg, options, ndim: int) -> tuple[int, ...]:
    """Context the network needs per side: ``--halo``, else the rdf's, else measured (loads the model)."""
    from runner.inference.geometry import build_geometry

    if options.halo:
        halo = list(options.halo)
        return tuple(halo * ndim if len(halo) == 1 else halo)
    declared = build_geometry(pkg).declared_margin
    if declared is not None:
        return tuple(int(m) for m in declared)
    from runner.inference.pipeline import Predictor

    with Predictor(pkg, options, device="cpu") as predictor:
        return tuple(int(m) for m in predictor.margin())


def _object_size(post, volume) -> int | None:
    """Diameter of the largest object allowed by a ``max_size`` param (voxels) of the post-processor."""
    sizes = []
    for params in [post.params, *(p for _, p in post.filters)]:
        value = getattr(params, "max_size", None)
        if isinstance(value, (int, float)) and value > 0:
            sizes.append(float(value))
    if not sizes:
        return None
    ndim = len(volume.spatial_shape)
    volume_voxels = max(sizes)
    radius = (
        math.sqrt(volume_voxels / math.pi) if ndim == 2 else (3 * volume_voxels / (4 * math.pi)) ** (1 / 3)
    )
    return int(math.ceil(2 * radius))


def _statistics(pkg, volume, options):
    from runner.distributed.model import volume_statistics

    nbytes = math.prod(volume.spatial_shape) * volume.channels * 4
    full = tuple(slice(0, n) for n in volume.spatial_shape)
    if nbytes <= STATS_FULL_MB * 2**20:
        image = volume.read(full)
    else:
        image = volume.read_lowres(full)
        if image is None:  # a plain array: every k-th voxel, about STATS_FULL_MB in all
            step = math.ceil((nbytes / (STATS_FULL_MB * 2**20)) ** (1 / len(full)))
            image = volume.read(tuple(slice(0, n, step) for n in volume.spatial_shape))
    return volume_statistics(pkg, image, trust_code=options.trust_code)


def _empty_test(volume, skip_below) -> LowresEmpty | None:
    if skip_below is None or volume.lowres is None:
        return None
    if skip_below == "auto":
        full = tuple(slice(0, n) for n in volume.spatial_shape)
        low = volume.read_lowres(full)
        return LowresEmpty(volume, float(low.min()))
    return LowresEmpty(volume, float(skip_below))


def _levels(shape: tuple[int, ...], axes: str, smallest: int = 64, most: int = 5) -> int:
    yx = [n for n, a in zip(shape, axes, strict=True) if a in "yx"]
    levels = 1
    while levels < most and min(yx) // 2**levels >= smallest:
        levels += 1
    return levels


def _downsample(index: int, grid, src, dst, axes: str) -> int:
    block = grid[index]
    region = tuple(
        slice(2 * s.start, 2 * s.stop, 2) if a in "yx" else s for s, a in zip(block.core, axes, strict=True)
    )
    dst.write(block.core, np.asarray(src.open("r")[region]))
    return index


def downsample_levels(client, sinks: list, axes: str, *, chunks: tuple[int, ...]) -> None:
    """Fill levels 1.. of a label pyramid from the level above (nearest: every other voxel along y, x);
    one task per output chunk."""
    from runner.distributed.grid import BlockGrid

    for src, dst in zip(sinks[:-1], sinks[1:], strict=True):
        shape = tuple(dst.open("r").shape)
        grid = BlockGrid(
            shape, tuple(min(c, n) for c, n in zip(chunks, shape, strict=True)), (0,) * len(shape)
        )
        futures = client.map(_downsample, range(len(grid)), grid=grid, src=src, dst=dst, axes=axes)
        client.gather(futures)

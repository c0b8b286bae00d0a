"""How one image runs: one pass when it fits, tiles only when it does not, and why, in words.

The rules (see ``docs/COMPATIBILITY.md``, "How runner predict runs a package"):

- **One pass when it fits.** The image is padded only as far as the model's size rule needs (centred, with the
  input's pad mode, as bioimageio.core's ``pad_to`` does) and run once, when that input fits the activation
  memory budget (:data:`BYTES_PER_VOXEL` per voxel; default half the available memory).
- **Tiles otherwise**, with a margin of context between tiles: ``--halo``, else the rdf's halo (plus what the
  model crops itself), else the receptive field measured by :mod:`runner.inference.halo`. A network with
  global operations gets the fewest, largest tiles that fit.
- **The border policy** (``--border``) decides what the network sees at the image border: ``image`` (only
  the image, as the package's test outputs were computed) or ``pad`` (the image extended by the margin first,
  as bioimageio.core's ``predict`` does for a whole sample with a halo).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from runner.errors import UserError
from runner.inference.geometry import Geometry
from runner.inference.tiling import AxisPlan, TilePlan

BYTES_PER_VOXEL = 1024
"""Memory one tile voxel is assumed to need inside the network (256 float32 activations)."""
DEFAULT_CPU_MEMORY_MB = 2048
"""CPU activation budget when the available memory is unknown; see :func:`default_cpu_memory_mb`."""
MAX_CPU_MEMORY_MB = 16384
"""Largest default CPU activation budget."""
MAX_BATCH = 16

GLOBAL_OPS_EXAMPLES = "global operations such as instance or group normalisation, attention or global pooling"
GLOBAL_OPS_NOTE = (
    "the network's outputs depend on the whole input ({cause}): images that fit the memory budget run as "
    "one pass; larger ones run as the largest tiles that fit and differ from a whole-image pass (raise "
    "--memory-mb to avoid it)"
)

CAPPED_NOTE = (
    "the network's receptive field reaches past a {probe} probe and the memory budget allows no larger one: "
    "the margin between tiles is capped at a quarter of the probe, so tiles may differ slightly from a "
    "whole-image pass (pass --halo, or raise --memory-mb)"
)


def default_cpu_memory_mb() -> float:
    """Half of the memory available now, at least :data:`DEFAULT_CPU_MEMORY_MB` and at most 16 GiB.

    Big tiles matter most in 3D, where the halo of a deep network is wide: a 48x96x96 volume with a 56-voxel
    halo is one 160x208x208 pass (about 3 GB for a 32-feature 3D U-Net) or 108 passes of 128^3 tiles.
    """
    available = _available_memory_mb()
    if available is None:
        return DEFAULT_CPU_MEMORY_MB
    return float(min(max(available / 2, DEFAULT_CPU_MEMORY_MB), MAX_CPU_MEMORY_MB))


def _available_memory_mb() -> float | None:
    """MemAvailable from /proc/meminfo (Linux), else free physical pages (POSIX), else None."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (AttributeError, OSError, ValueError):
        return None


def budget_mb(memory_mb: float | None, device) -> float:
    """The activation memory budget in MiB: ``memory_mb``, else half the free memory of a CUDA device, else
    :func:`default_cpu_memory_mb`."""
    mb = memory_mb
    if mb is None and device.is_cuda:
        import torch

        if torch.cuda.is_available():  # any backend: the device's free memory bounds the tiles
            free, _ = torch.cuda.mem_get_info(device.index)
            mb = free / 2**20 / 2
        else:  # onnxruntime-gpu beside a CPU build of torch: host memory says nothing about the GPU
            mb = DEFAULT_CPU_MEMORY_MB
    if mb is None:
        mb = default_cpu_memory_mb()
    return float(mb)


@dataclass(frozen=True)
class Context:
    """The margin of context between tiles, where it came from, and whether the network is global."""

    margin: tuple[int, ...]
    source: str
    """``--halo``, ``package halo``, ``measured`` or ``none``."""
    global_ops: bool = False


@dataclass(frozen=True)
class RunInfo:
    """What the last :meth:`Predictor.predict` did (for the terminal and run_config.json)."""

    tile_shape: tuple[int, ...]
    n_tiles: int
    batch_size: int
    margin: tuple[int, ...]
    mode: str = "tiles"
    """``one pass``, ``tiles`` or ``whole`` (``--tile whole``: the image as it is, no padding)."""
    border: str = "image"
    halo_source: str = ""
    why: str = ""
    global_ops: bool = False

    def describe(self) -> str:
        """One line, e.g. ``one pass of 512x512 (the image fits), halo 32 (package halo), border image``."""
        shape = "x".join(map(str, self.tile_shape))
        what = f"one pass of {shape}" if self.n_tiles == 1 else f"{self.n_tiles} tiles of {shape}"
        halo = "x".join(map(str, self.margin)) if len(set(self.margin)) > 1 else str(self.margin[0])
        source = f" ({self.halo_source})" if self.halo_source else ""
        return f"{what} ({self.why}); halo {halo}{source}, border {self.border}"

    def as_dict(self) -> dict:
        return {
            "mode": self.mode,
            "tile": list(self.tile_shape),
            "n_tiles": self.n_tiles,
            "batch_size": self.batch_size,
            "halo": list(self.margin),
            "halo_source": self.halo_source,
            "border": self.border,
            "why": self.why,
            "global_ops": self.global_ops,
        }


def border_extension(geo: Geometry, ctx: Context, border: str) -> tuple[int, ...]:
    """Pixels the image is extended by on each side before size-rule padding (see the module docstring)."""
    if border == "pad":
        return ctx.margin
    return geo.crop_margin


def why_tiles(
    plan: TilePlan,
    geo: Geometry,
    *,
    user_tile: bool,
    extension: Sequence[int],
    memory_mb: float,
) -> str:
    """Plain words for the plan's mode."""
    if plan.n_tiles == 1:
        padded = any(a.tile != a.size for a in plan.axes)
        return "the image fits one pass" + (", padded to the model's size rule" if padded else "")
    if user_tile:
        return "--tile asks for tiles"
    too_big = [
        f"{letter}: {a.size} > {rule.size}"
        for letter, a, rule, e in zip(geo.letters, plan.axes, geo.rules, extension, strict=True)
        if rule.kind == "fixed" and rule.size is not None and a.size + 2 * e > rule.size
    ]
    if too_big:
        return f"the image is larger than the model's fixed input size ({', '.join(too_big)})"
    return f"one pass would need more than the memory budget of {memory_mb:.0f} MiB (--memory-mb)"


def per_axis(value, ndim: int, *, name: str) -> tuple[int, ...] | None:
    if value is None:
        return None
    if isinstance(value, (int, np.integer)):
        return (int(value),) * ndim
    value = tuple(int(v) for v in value)
    if len(value) == 1:
        return value * ndim
    if len(value) != ndim:
        raise UserError(f"{name} needs 1 or {ndim} values for this {ndim}D model, got {len(value)}")
    return value


def mirror_axes(ndim: int) -> list[tuple[int, ...]]:
    """Every subset of the spatial axes: the mirror images used by test-time augmentation."""
    from itertools import combinations

    return [axes for k in range(ndim + 1) for axes in combinations(range(ndim), k)]


def ceil_to(value: int, q: int) -> int:
    return -(-int(value) // q) * q


def region_plan(
    shape: Sequence[int], origin: Sequence[int], full_shape: Sequence[int], *, whole: TilePlan, geo: Geometry
) -> TilePlan | None:
    """One pass over a region of a larger image, padded and aligned as the larger image's plan ``whole``.

    Along each axis the region's extent starts on the larger extent's tile grid (a multiple of the
    granularity from its start), exactly at its start where the region touches the image start, and ends
    exactly at its end where the region touches the image end; so the network sees the image borders as in
    the whole pass and pools in the same phase. None when no valid extent exists (e.g. fixed sizes).
    """
    axes = []
    for k, (s, o, full, g) in enumerate(zip(shape, origin, full_shape, whole.axes, strict=True)):
        q, rule = geo.granularity[k], geo.rules[k]
        pb, pa = g.pad_before, g.pad_after
        a = -pb if o == 0 else -pb + ((o + pb) // q) * q
        if (o - a) % geo.ratio_align[k]:  # the region's outputs would fall between the output pixels
            return None
        if o + s >= full:
            length = full + pa - a
            if not rule.is_valid(length):
                return None
        else:
            valid = rule.smallest_valid_at_least(o + s - a)
            if valid is None:
                return None
            length = valid
        axes.append(
            AxisPlan(
                size=s, tile=length, stride=length, margin=g.margin, n=1, pad_before=o - a, length=length
            )
        )
    return TilePlan(tuple(axes))

"""A deterministic stand-in for a model + post-processor, and volumes of touching objects to feed it.

The "image" holds one value per object (objects touch and cross each other's boxes); the stand-in segments it
into the connected components of equal value, so touching objects of different values stay apart and one
object stays one object. Its result on a block equals its result on the whole volume inside the core as long
as the halo is as large as the objects: the property the blockwise path must preserve. Used by the
equivalence tests and ``benchmarks/bench_distributed.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def touching_objects(
    shape: Sequence[int], *, n: int, size: int, seed: int = 0, border: bool = True
) -> np.ndarray:
    """``(*shape)`` float32 image of ``n`` ellipsoids of diameter up to ``size``, values 1..n.

    Objects are painted in order over each other, so many touch. With ``border`` some sit on the volume
    border, cut by it.
    """
    rng = np.random.default_rng(seed)
    shape = tuple(int(s) for s in shape)
    image = np.zeros(shape, np.float32)
    for value in range(1, n + 1):
        radii = rng.uniform(size / 4, size / 2, len(shape))
        lo = -radii / 2 if border else radii
        hi = np.array(shape) - 1 + (radii / 2 if border else -radii)
        centre = rng.uniform(lo, hi)
        box = [
            slice(max(int(c - r), 0), min(int(np.ceil(c + r)) + 1, s))
            for c, r, s in zip(centre, radii, shape, strict=True)
        ]
        if any(b.stop <= b.start for b in box):
            continue
        grids = np.ogrid[tuple(box)]
        inside = sum(((g - c) / r) ** 2 for g, c, r in zip(grids, centre, radii, strict=True)) <= 1
        image[tuple(box)][inside] = value
    return image


@dataclass(frozen=True)
class ValueComponents:
    """Stand-in segmenter: ``(C, *spatial)`` image -> connected components of equal value in channel 0."""

    def __call__(self, image: np.ndarray) -> np.ndarray:
        import cc3d

        values = np.rint(np.asarray(image[0])).astype(np.uint32)
        return cc3d.connected_components(values).astype(np.uint32)


def write_touching_volume(
    path, shape: Sequence[int], *, chunks: Sequence[int], n_per_chunk: int, size: int, seed: int = 0
):
    """A zarr array ``(*shape)`` float32 of touching objects, written chunk by chunk (never whole in memory).

    Each chunk gets ``n_per_chunk`` objects of :func:`touching_objects` (cut by the chunk's faces, values
    unique over the volume), so the volume can be many times larger than the memory of whoever reads it.
    """
    import itertools

    from runner.io.zarr_io import create_zarr

    shape, chunks = tuple(int(s) for s in shape), tuple(int(c) for c in chunks)
    arr = create_zarr(path, shape, np.dtype(np.float32), chunks=chunks, axes="zyx"[-len(shape) :])
    counts = [-(-s // c) for s, c in zip(shape, chunks, strict=True)]
    for i, pos in enumerate(itertools.product(*(range(n) for n in counts))):
        region = tuple(slice(p * c, min((p + 1) * c, s)) for p, c, s in zip(pos, chunks, shape, strict=True))
        part = touching_objects([r.stop - r.start for r in region], n=n_per_chunk, size=size, seed=seed + i)
        arr[region] = np.where(part > 0, part + i * n_per_chunk, 0)
    return arr


def peak_rss_mib() -> float:
    """Peak resident memory of this process in MiB (run on workers with ``client.run``).

    Linux's ``VmHWM`` (reset by exec), else ``ru_maxrss``, which a spawned worker inherits from the moment its
    parent forked it, before exec: with a parent of 700 MiB it would report 700 MiB for a 100 MiB worker.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

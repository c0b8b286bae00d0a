"""zarr arrays for data larger than memory: lazy reading and chunked, atomic writing."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from runner.errors import UserError


def open_zarr(path: str | Path):
    """Open a zarr array (or the first array of a group, e.g. OME-Zarr level ``0``) for reading."""
    import zarr

    path = Path(path)
    try:
        node = zarr.open(str(path), mode="r")
    except Exception as exc:
        raise UserError(f"cannot open zarr store ({exc})", path=path) from exc
    if isinstance(node, zarr.Array):
        return node
    for key in ("0", "data", "raw"):
        if key in node:
            return node[key]
    arrays = list(node.array_keys())
    if not arrays:
        raise UserError("zarr group holds no array", path=path)
    return node[arrays[0]]


def create_zarr(
    path: str | Path,
    shape: tuple[int, ...],
    dtype: np.dtype | str,
    *,
    chunks: tuple[int, ...] | None = None,
    axes: str | None = None,
    resolution: tuple[float, ...] | None = None,
):
    """Create an empty zarr array to be filled block by block (writers must finish it with ``os.replace``).

    Returns the array; ``axes`` and ``resolution`` are stored as attributes and read back by ``read_array``.
    """
    import zarr

    if chunks is None:
        chunks = tuple(
            min(n, 64 if len(shape) - i <= 3 and len(shape) >= 4 else 512) for i, n in enumerate(shape)
        )
    arr = zarr.create_array(store=str(path), shape=shape, dtype=dtype, chunks=chunks, overwrite=True)
    if axes:
        arr.attrs["axes"] = axes
    if resolution:
        arr.attrs["resolution"] = list(resolution)
    return arr


def write_zarr(
    path: str | Path,
    data: np.ndarray,
    *,
    axes: str | None = None,
    resolution: tuple[float, ...] | None = None,
    chunks: tuple[int, ...] | None = None,
) -> Path:
    """Write a whole array as a zarr store, atomically."""
    from runner.io.atomic import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp:
        arr = create_zarr(tmp, data.shape, data.dtype, chunks=chunks, axes=axes, resolution=resolution)
        arr[...] = data
    return path

"""OME-Zarr (NGFF 0.4 / 0.5) and plain zarr volumes, read lazily region by region; label images written as
an NGFF ``labels/<name>`` group (metadata by ``ome-zarr``).

>>> vol = open_volume("big.ome.zarr")          # level 0 of the multiscale image, nothing read yet
>>> vol.axes, vol.spatial_shape                # e.g. ('czyx', (2000, 8192, 8192))
>>> region = vol.read((slice(0, 64), slice(0, 512), slice(0, 512)))   # (C, 64, 512, 512) float32

A :class:`ZarrVolume` is a small picklable record (path, array, axes); each process opens the store on first
use, so Dask workers read their own regions straight from disk.
"""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from runner.errors import UserError

SPATIAL = "zyx"


@dataclass(frozen=True)
class ZarrVolume:
    """A zarr array read region by region.

    Attributes
    ----------
    path : the store (a folder).
    array : the array's path inside the store (``""`` when the store is the array).
    axes : one letter per array axis (``t``, ``c``, ``z``, ``y``, ``x``).
    shape : the array's shape.
    scale : pixel spacing per spatial axis, when the metadata gives one.
    lowres : path of the coarsest multiscale level (OME-Zarr), for cheap tests on a block.
    ngff : NGFF version of the image (``"0.4"``, ``"0.5"``) or None for a plain zarr array.
    """

    path: str
    array: str
    axes: str
    shape: tuple[int, ...]
    scale: tuple[float, ...] | None = None
    lowres: str | None = None
    ngff: str | None = None

    @property
    def spatial_axes(self) -> str:
        return "".join(a for a in self.axes if a in SPATIAL)

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        return tuple(n for a, n in zip(self.axes, self.shape, strict=True) if a in SPATIAL)

    @property
    def channels(self) -> int:
        return self.shape[self.axes.index("c")] if "c" in self.axes else 1

    def read(self, region: tuple[slice, ...], *, level: str | None = None) -> np.ndarray:
        """The region (one slice per spatial axis) as ``(C, *region)`` float32 (first time point)."""
        arr = _open_array(self.path, self.array if level is None else level)
        return _as_cyx(arr, self.axes, region)

    def read_lowres(self, region: tuple[slice, ...]) -> np.ndarray | None:
        """The region seen at the coarsest level ``(C, *smaller)``, or None without a pyramid."""
        if self.lowres is None:
            return None
        low = _open_array(self.path, self.lowres)
        spatial_low = [n for a, n in zip(self.axes, low.shape, strict=True) if a in SPATIAL]
        scaled = []
        for sl, n_full, n_low in zip(region, self.spatial_shape, spatial_low, strict=True):
            f = n_full / max(n_low, 1)
            scaled.append(slice(int(sl.start // f), max(int(np.ceil(sl.stop / f)), int(sl.start // f) + 1)))
        return _as_cyx(low, self.axes, tuple(scaled))


@functools.lru_cache(maxsize=16)
def _open_array(path: str, array: str):
    import zarr

    node: Any = zarr.open(path, mode="r")
    return node[array] if array else node


def _as_cyx(arr, axes: str, region: tuple[slice, ...]) -> np.ndarray:
    index: list = []
    it = iter(region)
    for a in axes:
        index.append(0 if a == "t" else slice(None) if a == "c" else next(it))
    data = np.asarray(arr[tuple(index)])
    kept = [a for a in axes if a != "t"]
    if "c" not in kept:
        data, kept = data[None], ["c", *kept]
    order = [kept.index("c")] + [kept.index(a) for a in kept if a != "c"]
    return np.ascontiguousarray(np.transpose(data, order), dtype=np.float32)


def is_zarr(path: str | Path) -> bool:
    """A zarr store (v2 or v3): a folder with ``.zarray``/``.zgroup``/``zarr.json``, or named ``*.zarr``."""
    path = Path(path)
    markers = (".zarray", ".zgroup", "zarr.json")
    return path.suffix.lower() == ".zarr" or (path.is_dir() and any((path / m).exists() for m in markers))


def open_volume(path: str | Path, *, axes: str | None = None) -> ZarrVolume:
    """Open an OME-Zarr image (its full-resolution level) or a plain zarr array, without reading data.

    Parameters
    ----------
    path : the store; for OME-Zarr the image group (with ``multiscales`` metadata).
    axes : axis letters for a plain array without metadata (e.g. ``zyx``, ``czyx``).

    Raises
    ------
    UserError
        Not a zarr store, no array, or axes that are unknown or do not match the array.
    """
    import zarr

    path = Path(path)
    if not path.exists():
        raise UserError("input not found", path=path, hint="give a zarr or OME-Zarr folder")
    try:
        node = zarr.open(str(path), mode="r")
    except Exception as exc:
        raise UserError(f"cannot open the zarr store ({exc})", path=path) from exc
    if isinstance(node, zarr.Array):
        return _plain(path, "", node, axes)
    attrs: dict[str, Any] = dict(node.attrs)
    if "multiscales" in attrs or "multiscales" in (attrs.get("ome") or {}):
        return _ome(path, axes)
    arrays = sorted(node.array_keys())
    if len(arrays) != 1:
        raise UserError(
            f"the zarr group holds {len(arrays)} arrays and no OME-Zarr multiscales metadata",
            path=path,
            hint="point --input at one array (e.g. big.zarr/raw) or an OME-Zarr image",
        )
    return _plain(path, arrays[0], node[arrays[0]], axes)


def _check_axes(axes: str, shape: tuple[int, ...], path: Path) -> str:
    axes = axes.lower()
    if len(axes) != len(shape) or set(axes) - set("tczyx") or len(set(axes)) != len(axes):
        raise UserError(
            f"axes {axes!r} do not fit an array of shape {shape}",
            path=path,
            hint="give one letter of t, c, z, y, x per array axis with --axes",
        )
    if "y" not in axes or "x" not in axes:
        raise UserError(f"the array has no y and x axes (axes {axes!r})", path=path, hint="set --axes")
    if "t" in axes and shape[axes.index("t")] > 1:
        raise UserError(
            f"the array has {shape[axes.index('t')]} time points", path=path, hint="write one time point"
        )
    return axes


def _plain(path: Path, array: str, arr, axes: str | None) -> ZarrVolume:
    shape = tuple(int(n) for n in arr.shape)
    found = axes or arr.attrs.get("axes") or _dimension_names(arr)
    if not found:
        if len(shape) == 2:
            found = "yx"
        else:
            raise UserError(
                f"the zarr array of shape {shape} has no axes metadata",
                path=path,
                hint="pass --axes, e.g. --axes zyx or --axes czyx",
            )
    found = _check_axes(str(found), shape, path)
    resolution = arr.attrs.get("resolution")
    scale = tuple(float(v) for v in resolution) if resolution else None
    return ZarrVolume(str(path), array, found, shape, scale=scale)


def _dimension_names(arr) -> str | None:
    names = getattr(arr.metadata, "dimension_names", None) or arr.attrs.get("_ARRAY_DIMENSIONS")
    if names and all(isinstance(n, str) and len(n) == 1 for n in names):
        return "".join(names)
    return None


def _ome(path: Path, axes: str | None) -> ZarrVolume:
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Multiscales, Reader

    quiet = logging.getLogger("ome_zarr")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # "version mismatch" notes on every 0.4 image
    try:
        location = parse_url(str(path))
        if location is None:
            raise UserError("not an OME-Zarr image", path=path)
        node = next(iter(Reader(location)()), None)
    finally:
        quiet.setLevel(level)
    spec = None if node is None else next((s for s in node.specs if isinstance(s, Multiscales)), None)
    if node is None or spec is None:
        raise UserError("no multiscale image found in the OME-Zarr store", path=path)
    names = [a["name"] if isinstance(a, dict) else str(a) for a in node.metadata.get("axes") or []]
    letters = axes or "".join(n[0].lower() for n in names)
    shape = tuple(int(n) for n in node.data[0].shape)
    letters = _check_axes(letters, shape, path)
    transforms = (node.metadata.get("coordinateTransformations") or [[]])[0]
    scale_t = next((t["scale"] for t in transforms if t.get("type") == "scale"), None)
    scale = None
    if scale_t is not None:
        scale = tuple(float(s) for s, a in zip(scale_t, letters, strict=True) if a in SPATIAL)
    version = str(location.fmt.version)
    datasets = list(spec.datasets)
    return ZarrVolume(
        str(path),
        datasets[0],
        letters,
        shape,
        scale=scale,
        lowres=datasets[-1] if len(datasets) > 1 else None,
        ngff=version,
    )


@dataclass(frozen=True)
class ZarrLabels:
    """A label array being written block by block (picklable: each task opens it itself)."""

    path: str
    array: str

    def open(self, mode: Literal["r", "r+"] = "r+"):
        import zarr

        node: Any = zarr.open(self.path, mode=mode)
        return node[self.array] if self.array else node

    def write(self, region: tuple[slice, ...], labels: np.ndarray) -> None:
        """Write ``labels`` into ``region`` (chunk-aligned: one task per chunk, no read-modify-write)."""
        self.open()[region] = labels

    def read(self, region: tuple[slice, ...]) -> np.ndarray:
        return np.asarray(self.open("r")[region])


def create_labels(
    path: str | Path,
    shape: tuple[int, ...],
    *,
    chunks: tuple[int, ...],
    axes: str,
    scale: tuple[float, ...] | None = None,
    ngff: str | None = "0.4",
    name: str = "instances",
    source: str | Path | None = None,
    levels: int = 1,
) -> list[ZarrLabels]:
    """Create the empty label arrays of an output (uint32, ``chunks`` per block), to be filled by tasks.

    With ``ngff`` an OME-Zarr of that version is created with a ``labels/<name>`` multiscale label image
    (``image-label`` metadata, ``source`` pointing at the input image when given) and ``levels`` levels, each
    half the previous along y and x; without, a plain zarr array (``axes``/``resolution`` attributes).

    Returns
    -------
    list of ZarrLabels
        One per level, full resolution first.
    """
    import zarr

    from runner.io.zarr_io import create_zarr

    path = Path(path)
    if ngff is None:
        create_zarr(path, shape, np.dtype(np.uint32), chunks=chunks, axes=axes, resolution=scale)
        return [ZarrLabels(str(path), "")]
    import dask.array as da
    from ome_zarr.format import FormatV04, FormatV05
    from ome_zarr.writer import write_multiscale_labels

    fmt = FormatV05() if ngff == "0.5" else FormatV04()
    root = zarr.open_group(str(path), mode="w", zarr_format=3 if ngff == "0.5" else 2)
    pyramid, level_shape = [], tuple(shape)
    for _ in range(levels):
        pyramid.append(da.zeros(level_shape, dtype=np.uint32, chunks=chunks))
        level_shape = tuple(-(-n // 2) if a in "yx" else n for n, a in zip(level_shape, axes, strict=True))
    metadata: dict = {}
    if source is not None:
        metadata["source"] = {
            "image": os.path.relpath(Path(source).resolve(), (path / "labels" / name).resolve())
        }
    transforms = None
    if scale is not None:
        factors = [[2**i if a in "yx" else 1 for a in axes] for i in range(levels)]
        transforms = [
            [{"type": "scale", "scale": [s * f for s, f in zip(scale, fs, strict=True)]}] for fs in factors
        ]
    write_multiscale_labels(
        pyramid,
        root,
        name,
        fmt=fmt,
        axes=list(axes),
        coordinate_transformations=transforms,
        storage_options={"chunks": chunks},
        label_metadata=metadata or None,
        compute=False,
    )
    labels_group: Any = root["labels"]
    group: Any = labels_group[name]
    paths = [d["path"] for d in _multiscales(dict(group.attrs))[0]["datasets"]]
    return [ZarrLabels(str(path), f"labels/{name}/{p}") for p in paths]


def _multiscales(attrs: dict) -> list:
    return attrs.get("multiscales") or attrs.get("ome", {}).get("multiscales", [])

"""Reading and writing images and label images (TIFF, OME-TIFF, zarr, PNG/JPEG, npy).

Engine layout: images are ``float32`` arrays ``(C, Y, X)`` or ``(C, Z, Y, X)``; label images are ``uint32``
``(Y, X)`` or ``(Z, Y, X)`` with 0 as background. Axes come from ``--axes`` when given, else from OME or
ImageJ metadata, else from the shape (see :func:`runner.io.axes.guess_axes`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from runner.errors import UserError
from runner.io.atomic import atomic_path
from runner.io.axes import guess_axes, normalize_axes, to_engine_image, to_engine_labels

TIFF_SUFFIXES = (".tif", ".tiff")
IMAGE_SUFFIXES = (*TIFF_SUFFIXES, ".zarr", ".png", ".jpg", ".jpeg", ".bmp", ".npy")


@dataclass
class ImageInfo:
    """What we know about an image file before moving it to the engine layout."""

    path: Path
    axes: str
    """Axes of the array as stored (lower case, ``s`` read as ``c``)."""
    shape: tuple[int, ...]
    dtype: np.dtype
    resolution: tuple[float, ...] | None = None
    """Pixel spacing along the spatial axes ``(z,) y, x`` in physical units, when the file says."""

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        return tuple(self.shape[self.axes.index(a)] for a in "zyx" if a in self.axes)

    @property
    def n_channels(self) -> int:
        return self.shape[self.axes.index("c")] if "c" in self.axes else 1


@dataclass
class Image:
    """An image in the engine layout and where it came from."""

    data: np.ndarray
    """``(C, Y, X)`` or ``(C, Z, Y, X)`` float32."""
    axes: str
    info: ImageInfo

    @property
    def ndim(self) -> int:
        """Number of spatial dimensions (2 or 3)."""
        return self.data.ndim - 1


@dataclass
class Labels:
    """A label image in the engine layout, with the optional per-pixel class channel."""

    data: np.ndarray
    """``(Y, X)`` or ``(Z, Y, X)`` uint32, 0 = background."""
    info: ImageInfo
    classes: np.ndarray | None = field(default=None)
    """Same shape as ``data``: the class of the instance at each pixel (0 = background)."""


def natural_key(name: str) -> list:
    """Sort key that orders ``img2`` before ``img10``."""
    import re

    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def stem(path: str | Path) -> str:
    """File name without image suffixes (``a.ome.tif`` -> ``a``)."""
    name = Path(path).name
    for suffix in (".ome.tiff", ".ome.tif", *IMAGE_SUFFIXES):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


# --------------------------------------------------------------------------------------------- reading


def _tiff_axes_and_resolution(tif) -> tuple[str, tuple[float, ...] | None]:
    import tifffile

    series = tif.series[0]
    axes = series.axes.lower().replace("s", "c")
    res: dict[str, float] = {}
    if tif.is_ome and tif.ome_metadata:
        try:
            pixels = tifffile.xml2dict(tif.ome_metadata)["OME"]["Image"]
            pixels = (pixels[0] if isinstance(pixels, list) else pixels)["Pixels"]
            for a in "zyx":
                if f"PhysicalSize{a.upper()}" in pixels:
                    res[a] = float(pixels[f"PhysicalSize{a.upper()}"])
        except (KeyError, TypeError, ValueError):
            pass
    elif tif.is_imagej:
        meta = tif.imagej_metadata or {}
        if "spacing" in meta:
            res["z"] = float(meta["spacing"])
        tags = tif.pages[0].tags
        for a, tag in (("x", "XResolution"), ("y", "YResolution")):
            if tag in tags:
                num, den = tags[tag].value
                if num:
                    res[a] = den / num
    spatial = [a for a in "zyx" if a in axes]
    resolution = tuple(res.get(a, 1.0) for a in spatial) if res else None
    return axes, resolution


def _resolve_axes(axes: str, shape: tuple[int, ...], path: Path) -> str:
    """Replace unknown axes (tifffile's ``q``/``i``) by a guess from the shape; drop them when of size one."""
    if not set(axes) & {"q", "i"}:
        return axes
    known = "".join(a for a, n in zip(axes, shape, strict=True) if a not in "qi" or n > 1)
    sizes = tuple(n for a, n in zip(axes, shape, strict=True) if a not in "qi" or n > 1)
    if not set(known) & {"q", "i"}:
        return axes  # only singleton unknown axes: to_engine_* drops them
    guess = guess_axes(sizes)
    if guess is None:
        raise UserError(
            f"cannot tell the axes of an image of shape {shape}",
            path=path,
            hint="pass --axes, e.g. --axes zyx, yxc, zyxc or czyx",
        )
    out, it = [], iter(guess)
    for a, n in zip(axes, shape, strict=True):
        out.append(a if a in "qi" and n == 1 else next(it))
    return "".join(out)


def _open_array(path: Path):
    """Return ``(array_like, axes, resolution)``; arrays are loaded lazily where the format allows."""
    suffix = path.suffix.lower()
    if not path.exists():
        raise UserError("file not found", path=path)
    try:
        if suffix in TIFF_SUFFIXES:
            import tifffile

            with tifffile.TiffFile(path) as tif:
                axes, resolution = _tiff_axes_and_resolution(tif)
                series = tif.series[0]
                check_image_size(series.shape, series.dtype, path)  # from the header, before allocating
                data = series.asarray()
            return data, axes, resolution
        if suffix == ".zarr":
            from runner.io.zarr_io import open_zarr

            arr = open_zarr(path)
            axes = arr.attrs.get("axes")
            resolution = arr.attrs.get("resolution")
            return arr, (axes or "").lower() or None, tuple(resolution) if resolution else None
        if suffix == ".npy":
            return np.load(path, mmap_mode="r", allow_pickle=False), None, None
        if suffix in (".png", ".jpg", ".jpeg", ".bmp"):
            import imageio.v3 as iio

            props = iio.improps(path)  # the header only
            check_image_size(props.shape, props.dtype, path)
            data = iio.imread(path)
            return data, ("yxc" if data.ndim == 3 else "yx"), None
    except UserError:
        raise
    except Exception as exc:  # corrupt or truncated file: one line, no traceback
        raise UserError(
            f"cannot read image ({type(exc).__name__}: {exc})",
            path=path,
            hint="check the file is a valid image",
        ) from exc
    raise UserError(
        f"unsupported image format {suffix!r}", path=path, hint=f"use one of {', '.join(IMAGE_SUFFIXES)}"
    )


def check_image_size(shape, dtype, path: Path) -> None:
    """Refuse complex images, and images whose pixels (as stored, then as float32) exceed the memory budget.

    Called with the shape and dtype from the file's header, before the pixels are read.
    """
    from runner.safety import check_shape

    dtype = np.dtype(dtype)
    if dtype.kind == "c":
        raise UserError(
            f"the image has complex values ({dtype}); runner reads real-valued images",
            path=path,
            hint="save the magnitude (abs) or the real part as a real-valued image",
        )
    if dtype.kind not in "biuf":
        raise UserError(f"the image has unsupported pixel type {dtype}", path=path)
    check_shape(
        shape,
        itemsize=dtype.itemsize + 4,  # as stored + the float32 engine image (the least a read needs)
        what=f"reading the {dtype} image",
        path=path,
        hint="crop or downsample it, or open it lazily as OME-Zarr",
    )


def read_array(path: str | Path, *, axes: str | None = None) -> tuple[np.ndarray, ImageInfo]:
    """Read a file as stored, with its axes resolved (override > metadata > guess)."""
    path = Path(path)
    data, file_axes, resolution = _open_array(path)
    shape = tuple(int(n) for n in data.shape)
    check_image_size(shape, data.dtype, path)  # zarr and npy are still lazy here
    if axes is not None:
        axes = normalize_axes(axes)
        if len(axes) != len(shape):
            raise UserError(
                f"--axes {axes!r} has {len(axes)} letters but the image has shape {shape}",
                path=path,
                hint="give one letter per dimension",
            )
    elif file_axes:
        axes = _resolve_axes(file_axes, shape, path)
    else:
        axes = guess_axes(shape)
        if axes is None:
            raise UserError(
                f"cannot tell the axes of an image of shape {shape}", path=path, hint="pass --axes"
            )
    if resolution is not None and len(resolution) != sum(a in axes for a in "zyx"):
        resolution = None
    info = ImageInfo(path=path, axes=axes, shape=shape, dtype=np.dtype(data.dtype), resolution=resolution)
    return np.asarray(data), info


def open_lazy(path: str | Path, *, axes: str | None = None):
    """Open an image without loading it: ``(array_like, ImageInfo)``, for data larger than memory.

    TIFF files are served through tifffile's zarr view (tiles/strips read on demand), ``.zarr`` stores and
    ``.npy`` files lazily as well; slicing the returned object reads only the requested block. Axes are the
    file's (see ``info.axes``), not the engine layout.
    """
    path = Path(path)
    if path.suffix.lower() in TIFF_SUFFIXES and path.exists():
        import tifffile
        import zarr

        _, info = _probe_tiff(path, axes)
        try:
            store = tifffile.imread(path, aszarr=True)
            return zarr.open(store, mode="r"), info
        except Exception as exc:
            raise UserError(f"cannot read image ({type(exc).__name__}: {exc})", path=path) from exc
    data, file_axes, resolution = _open_array(path)
    if axes is None:
        axes = file_axes or guess_axes(tuple(data.shape))
    if axes is None:
        raise UserError(
            f"cannot tell the axes of an image of shape {tuple(data.shape)}", path=path, hint="pass --axes"
        )
    info = ImageInfo(
        path=path,
        axes=normalize_axes(axes),
        shape=tuple(data.shape),
        dtype=np.dtype(data.dtype),
        resolution=resolution,
    )
    return data, info


def _probe_tiff(path: Path, axes: str | None):
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            file_axes, resolution = _tiff_axes_and_resolution(tif)
            shape, dtype = tuple(tif.series[0].shape), tif.series[0].dtype
    except Exception as exc:
        raise UserError(f"cannot read image ({type(exc).__name__}: {exc})", path=path) from exc
    axes = normalize_axes(axes) if axes else _resolve_axes(file_axes, shape, path)
    return None, ImageInfo(path=path, axes=axes, shape=shape, dtype=np.dtype(dtype), resolution=resolution)


def read_image(path: str | Path, *, axes: str | None = None) -> Image:
    """Read an image as float32 ``(C, (Z,) Y, X)``."""
    raw, info = read_array(path, axes=axes)
    data, eaxes = to_engine_image(raw, info.axes, where=info.path)
    data = np.ascontiguousarray(data, dtype=np.float32)
    if not np.isfinite(data).all():
        raise UserError(
            "image contains NaN or infinite values", path=info.path, hint="clean or re-export the image"
        )
    return Image(data=data, axes=eaxes, info=info)


def as_label_array(data: np.ndarray, *, where: str | Path | None = None) -> np.ndarray:
    """Check and convert an array to uint32 labels: integers (or integral floats), no negatives."""
    data = np.asarray(data)
    if data.dtype == bool:
        return data.astype(np.uint32)
    if data.dtype.kind == "f":
        if not np.isfinite(data).all():
            raise UserError("label image contains NaN or infinite values", path=where)
        if not np.array_equal(data, np.round(data)):
            raise UserError(
                "label image has non-integer values (a probability map?)",
                path=where,
                hint="labels must hold one integer id per object; threshold and label it first",
            )
    elif data.dtype.kind not in "iu":
        raise UserError(f"label image has unsupported dtype {data.dtype}", path=where)
    if data.size and data.min() < 0:
        raise UserError("label image has negative ids", path=where, hint="ids must be >= 0 (0 = background)")
    if data.size and data.max() > np.iinfo(np.uint32).max:
        raise UserError("label ids do not fit in uint32", path=where)
    return data.astype(np.uint32, copy=False)


def read_labels(
    path: str | Path, *, axes: str | None = None, spatial_shape: tuple[int, ...] | None = None
) -> Labels:
    """Read an instance label image; a second channel, when present, is the class of each instance.

    ``spatial_shape`` (the paired image's) tells a class channel apart from a z axis and checks shapes.
    """
    raw, info = read_array(path, axes=axes)
    classes = None
    if axes is None and spatial_shape is not None and raw.ndim == len(spatial_shape) + 1:
        # instance + class channels: find the axis of size 2 whose removal leaves the image's shape
        for ax in (raw.ndim - 1, 0):
            rest = raw.shape[:ax] + raw.shape[ax + 1 :]
            if raw.shape[ax] == 2 and rest == tuple(spatial_shape):
                classes = np.take(raw, 1, axis=ax)
                raw = np.take(raw, 0, axis=ax)
                info.axes = "zyx"[-raw.ndim :]
                break
    elif axes is None and spatial_shape is None and raw.ndim == 3 and raw.shape[-1] == 2:
        classes, raw = raw[..., 1], raw[..., 0]
        info.axes = "yx"
    if "c" in info.axes and raw.shape[info.axes.index("c")] == 2 and classes is None:
        ci = info.axes.index("c")
        classes = np.take(raw, 1, axis=ci)
        raw = np.take(raw, 0, axis=ci)
        info.axes = info.axes.replace("c", "")
    data, _ = to_engine_labels(raw, info.axes, where=info.path)
    data = as_label_array(data, where=info.path)
    if classes is not None:
        classes, _ = to_engine_labels(classes, info.axes, where=info.path)
        classes = as_label_array(classes, where=info.path)
    if spatial_shape is not None and tuple(data.shape) != tuple(spatial_shape):
        raise UserError(
            f"label image has shape {data.shape} but its image has spatial shape {tuple(spatial_shape)}",
            path=info.path,
            hint="labels must cover the image pixel for pixel",
        )
    return Labels(data=np.ascontiguousarray(data), info=info, classes=classes)


# --------------------------------------------------------------------------------------------- writing


def write_tiff(
    path: str | Path,
    data: np.ndarray,
    *,
    axes: str,
    resolution: tuple[float, ...] | None = None,
    compression: str | None = "zlib",
) -> Path:
    """Write an OME-TIFF atomically. ``axes`` names the array's axes (e.g. ``"zyx"``, ``"yxc"``).

    The file stores the axes in OME order (``t c z y x``), so channels-last input is transposed.
    """
    import tifffile

    path = Path(path)
    axes = normalize_axes(axes)
    if len(axes) != data.ndim:
        raise ValueError(f"axes {axes!r} do not match array of shape {data.shape}")
    canonical = "".join(a for a in "tczyx" if a in axes)
    if canonical != axes:
        data = np.transpose(data, [axes.index(a) for a in canonical])
        axes = canonical
    metadata: dict = {"axes": axes.upper()}
    if resolution is not None:
        spatial = [a for a in "zyx" if a in axes]
        for a, r in zip(spatial, resolution, strict=True):
            metadata[f"PhysicalSize{a.upper()}"] = float(r)
    if data.dtype == np.int64 or data.dtype == np.uint64:
        data = data.astype(np.uint32)
    with atomic_path(path) as tmp:
        tifffile.imwrite(
            tmp, data, ome=True, metadata=metadata, compression=compression, photometric="minisblack"
        )
    return path


def write_labels(
    path: str | Path, labels: np.ndarray, *, resolution: tuple[float, ...] | None = None
) -> Path:
    """Write a ``(Z,) Y, X`` label image as uint16 when the ids fit, else uint32."""
    labels = np.asarray(labels)
    dtype = np.uint16 if labels.size == 0 or labels.max() < 2**16 else np.uint32
    return write_tiff(
        path, labels.astype(dtype, copy=False), axes="zyx"[-labels.ndim :], resolution=resolution
    )


def write_image(
    path: str | Path,
    data: np.ndarray,
    *,
    resolution: tuple[float, ...] | None = None,
    compression: str | None = None,
) -> Path:
    """Write an engine-layout image ``(C, (Z,) Y, X)``; a single channel is written without the C axis."""
    axes = "czyx" if data.ndim == 4 else "cyx"
    if data.shape[0] == 1:
        data, axes = data[0], axes[1:]
    return write_tiff(path, data, axes=axes, resolution=resolution, compression=compression)


def gray_if_lossless(arr: np.ndarray, n_channels: int | None) -> np.ndarray:
    """One channel from an RGB(A) image whose colour channels are equal and whose alpha is constant (a
    greyscale picture saved as RGB/RGBA, as DSB2018's PNGs are), when the model takes one channel; any
    other image unchanged (a real colour image still fails the channel check)."""
    if n_channels != 1 or arr.ndim < 3 or arr.shape[0] not in (3, 4):
        return arr
    if not (np.array_equal(arr[0], arr[1]) and np.array_equal(arr[0], arr[2])):
        return arr
    if arr.shape[0] == 4 and not (arr[3] == arr[3].flat[0]).all():
        return arr
    return arr[:1]

"""napari writer: a labels layer as a TIFF label image (uint16/uint32; pixel size from the layer's scale)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def write_labels(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """npe2 single-layer writer: ``data`` ``((Z,) Y, X)`` integer labels to ``path`` (written atomically).

    Returns the written path (napari's convention), or an empty list when the layer is not 2D/3D labels.
    """
    import numpy as np

    from runner.io import write_labels as write

    labels = np.asarray(data[0] if isinstance(data, list) else data)  # multiscale: the full resolution
    if labels.ndim not in (2, 3) or not np.issubdtype(labels.dtype, np.integer) or labels.min(initial=0) < 0:
        return []
    scale = meta.get("scale")
    resolution = tuple(float(s) for s in scale[-labels.ndim :]) if scale is not None else None
    if resolution is not None and all(s == 1.0 for s in resolution):
        resolution = None
    target = Path(path)
    if target.suffix.lower() not in (".tif", ".tiff"):
        target = target.with_suffix(".tif")
    write(target, labels.astype(np.uint32, copy=False), resolution=resolution)
    return [str(target)]

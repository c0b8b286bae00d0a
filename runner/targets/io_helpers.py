"""Reading labels for target making and drawing target previews."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from runner.errors import UserError
from runner.io import Image, read_labels
from runner.targets.codes import ChannelSpec


def read_target_labels(path: Path, image: Image, *, overlapping: bool = False) -> np.ndarray:
    """Labels for ``image``: ``(Z,) Y, X``, or an overlapping stack ``(N, (Z,) Y, X)`` when
    ``overlapping``."""
    spatial = image.data.shape[1:]
    if not overlapping:
        return read_labels(path, spatial_shape=spatial).data
    from runner.io.images import as_label_array, read_array

    raw, info = read_array(path, axes="zyx"[-(len(spatial) + 1) :] if len(spatial) == 2 else "czyx")
    raw = as_label_array(raw, where=path)
    if raw.ndim == len(spatial):
        raw = raw[np.newaxis]
    if tuple(raw.shape[1:]) != tuple(spatial):
        raise UserError(
            f"overlapping stack has planes of shape {raw.shape[1:]} but the image is {tuple(spatial)}",
            path=path,
        )
    return raw


def write_preview(
    path: Path,
    image: np.ndarray,
    labels: np.ndarray,
    channels: np.ndarray,
    specs: list[ChannelSpec],
    *,
    weights: np.ndarray | None = None,
    overlapping: bool = False,
    max_channels: int = 8,
) -> None:
    """image | labels | each channel (the middle slice of 3D data) as one PNG."""
    from runner.viz import Panel, save_panels

    def mid(a: np.ndarray) -> np.ndarray:
        return a[a.shape[0] // 2] if a.ndim == 3 else a

    flat = labels.max(0) if overlapping else labels
    panels = [
        Panel("image", mid(image[0])),
        Panel(f"labels ({len(np.unique(flat)) - 1} objects)", mid(flat), "labels"),
    ]
    shown = list(zip(specs, channels, strict=False))[:max_channels]
    for spec, ch in shown:
        panels.append(Panel(spec.name, mid(ch), "map"))
    if weights is not None:
        panels.append(Panel("GA weights", mid(weights), "map"))
    save_panels(path, panels, ncols=min(len(panels), 6))

"""The classical pipeline for raw images, no model: smooth, threshold, split touching objects, watershed.

Steps (as taught in introductory bioimage-analysis courses):

1. pick a channel (or the channel mean) and stretch it to [0, 1] between its 1st and 99.8th percentiles
   (inverted when ``objects="dark"``);
2. optional Gaussian smoothing (``smooth``, resolution units);
3. threshold: global Otsu, a local mean threshold over a ``local_size`` window minus ``offset``, or a fixed
   number;
4. fill holes in the mask and drop specks smaller than ``min_size``;
5. split touching objects: ``shape`` seeds at the maxima of the distance transform (round objects),
   ``intensity``
   seeds at the maxima of the smoothed intensity (objects brighter in the middle), or ``none``
   (connected components);
6. watershed from the seeds inside the mask, then drop objects smaller than ``min_size``.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field, field_validator

from runner.errors import UserError
from runner.postprocessing import ops
from runner.postprocessing.params import otsu
from runner.postprocessing.registry import Params, register


class ClassicalParams(Params):
    channel: int | Literal["mean"] = Field(
        default=0, description="Image channel to segment, or 'mean' of all channels."
    )
    objects: Literal["bright", "dark"] = Field(
        default="bright", description="Objects brighter or darker than the background."
    )
    smooth: float = Field(
        default=1.0,
        ge=0,
        le=50,
        description="Gaussian sigma (resolution units) before thresholding; 0 = off.",
    )
    threshold: float | Literal["otsu", "local"] = Field(
        default="otsu",
        description="otsu (global), local (mean over local_size minus offset), or a number in [0, 1] on "
        "the stretched image.",
    )
    local_size: float = Field(
        default=31.0, gt=0, le=10000, description="Window width of the local threshold (resolution units)."
    )
    offset: float = Field(
        default=-0.05,
        ge=-1,
        le=1,
        description="Subtracted from the local mean (local threshold); "
        "negative = objects must be brighter than their surroundings.",
    )
    split: Literal["shape", "intensity", "none"] = Field(
        default="shape",
        description="Split touching objects by distance-transform maxima (shape), intensity maxima, or "
        "not at all (connected components).",
    )
    min_distance: float = Field(
        default=4.0, ge=0, le=1000, description="Seeds at least this far apart (resolution units)."
    )
    fill_holes: bool = Field(default=True, description="Fill holes in the foreground mask before splitting.")
    min_size: int = Field(
        default=20, ge=0, le=10**9, description="Drop objects with fewer pixels/voxels than this."
    )

    @field_validator("split", mode="before")
    @classmethod
    def _none_word(cls, v):
        return "none" if v is None else v  # the CLI reads split=none as None


def _check(image: np.ndarray, params: ClassicalParams) -> None:
    n = image.shape[0]
    if params.channel != "mean" and not -n <= params.channel < n:
        raise UserError(
            f"channel={params.channel} does not exist: the image has {n} channel(s) (shape {image.shape})",
            hint=f"use a channel between 0 and {n - 1}, or channel=mean",
        )
    if isinstance(params.threshold, float | int) and not 0 <= params.threshold <= 1:
        raise UserError(f"threshold={params.threshold} must be otsu, local or a number in [0, 1]")


def stretch(image: np.ndarray, params: ClassicalParams) -> np.ndarray:
    """The chosen channel scaled to [0, 1] by its 1st and 99.8th percentiles (objects bright)."""
    img = image.mean(axis=0) if params.channel == "mean" else image[params.channel]
    lo, hi = np.percentile(img, (1.0, 99.8))
    out = np.clip((img - lo) / max(float(hi - lo), 1e-12), 0, 1).astype(np.float32)
    return 1.0 - out if params.objects == "dark" else out


def threshold_mask(
    img: np.ndarray, params: ClassicalParams, resolution: tuple[float, ...] | None
) -> np.ndarray:
    """Foreground of the smoothed, stretched image."""
    from scipy import ndimage as ndi

    if params.threshold == "otsu":
        return img > otsu(img)
    if params.threshold == "local":
        size = [2 * r + 1 for r in ops.box_radius(params.local_size / 2, resolution, img.ndim)]
        local = ndi.uniform_filter(img, size=size, mode="reflect")
        return img > local - params.offset
    return img > float(params.threshold)


@register("classical", params=ClassicalParams, input="image", check=_check)
def classical(image, params: ClassicalParams, *, resolution=None, debug=None):
    """Raw image, no model: smoothing, Otsu/local threshold, split touching objects by shape or intensity."""
    from scipy import ndimage as ndi

    img = ops.smooth(stretch(image, params), params.smooth, resolution)
    fg = threshold_mask(img, params, resolution)
    if params.fill_holes:
        fg = ndi.binary_fill_holes(fg)
    fg = ops.remove_small(ops.label_mask(fg), params.min_size) > 0
    if params.split == "none":
        seeds = ops.label_mask(fg)
        surface = -img
    else:
        height = (
            ops.smooth(ops.distance_inside(fg, resolution), 1.0, resolution)
            if params.split == "shape"
            else img
        )
        seeds = ops.distance_peaks(np.where(fg, height, 0), params.min_distance, resolution)
        seeds[~fg] = 0
        surface = -height
    labels = ops.watershed(surface, seeds, fg)
    labels = ops.drop_small_and_relabel(labels, params.min_size)
    if debug is not None:
        debug.update(seeds=seeds, foreground=fg, surface=surface.astype(np.float32))
    return labels

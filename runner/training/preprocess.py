"""Input normalisation exactly as bioimage.io defines the ops (statistics of the whole image, per channel).

``zero_mean_unit_variance``: ``(x - mean) / (std + eps)`` with the population standard deviation;
``scale_range``: ``(x - q_low) / (q_high - q_low + eps)`` with linear-interpolated percentiles. Both reduce
over the spatial axes of each channel: bioimage.io kwargs ``axes: [(z,) y, x]`` (without ``c`` or ``b``).
"""

from __future__ import annotations

import numpy as np

from runner.recipes.sections import ScaleRange, ZeroMeanUnitVariance


def normalize(image: np.ndarray, op: ZeroMeanUnitVariance | ScaleRange) -> np.ndarray:
    """Normalise ``image`` ``(C, (Z,) Y, X)`` per channel; returns float32 of the same shape."""
    x = np.asarray(image, dtype=np.float32)
    axes = tuple(range(1, x.ndim))
    if op.name == "zero_mean_unit_variance":
        x64 = x.astype(np.float64)
        mean = x64.mean(axis=axes, keepdims=True)
        std = np.sqrt(((x64 - mean) ** 2).mean(axis=axes, keepdims=True))
        return ((x - mean.astype(np.float32)) / (std.astype(np.float32) + np.float32(op.eps))).astype(
            np.float32
        )
    if op.name == "scale_range":
        flat = x.reshape(x.shape[0], -1)
        lo = np.percentile(flat, op.min_percentile, axis=1).astype(np.float32)
        hi = np.percentile(flat, op.max_percentile, axis=1).astype(np.float32)
        shape = (-1,) + (1,) * (x.ndim - 1)
        return (
            (x - lo.reshape(shape)) / (hi.reshape(shape) - lo.reshape(shape) + np.float32(op.eps))
        ).astype(np.float32)
    raise ValueError(f"unknown preprocessing {op.name!r}")


def bioimageio_kwargs(op: ZeroMeanUnitVariance | ScaleRange, ndim: int) -> dict:
    """The op as bioimage.io preprocessing ``{"id": ..., "kwargs": {...}}`` (format 0.5, axes without c)."""
    axes = ["z", "y", "x"][-ndim:]
    if op.name == "zero_mean_unit_variance":
        return {"id": "zero_mean_unit_variance", "kwargs": {"axes": axes, "eps": op.eps}}
    return {
        "id": "scale_range",
        "kwargs": {
            "axes": axes,
            "min_percentile": op.min_percentile,
            "max_percentile": op.max_percentile,
            "eps": op.eps,
        },
    }

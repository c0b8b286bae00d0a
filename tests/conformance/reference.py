"""An independent numpy implementation of the spec's pre/post-processing ops, for the packages' test outputs.

Written from the spec's definitions (bioimageio.spec ``*Kwargs`` docstrings) with bioimageio.core's
conventions where the spec leaves a choice: standard deviations are population ones (``ddof=0``),
percentiles interpolate linearly (``scale_range``) or are the inverted CDF (``clip`` with percentiles),
``eps`` is added to the denominator (``std + eps``, ``upper - lower + eps``), ``ensure_dtype`` casts
(truncating), and the statistics an op needs are those of the *unprocessed* tensor (the raw input, or the
network's raw output for post-processing), as bioimageio.core computes them once per sample before the first
op. With one sample, per-dataset statistics are the sample's (reduced over batch too).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from tests.conformance.cases import Op


def _reduce_axes(dims: Sequence[str], axes: Sequence[str] | None) -> tuple[int, ...]:
    if axes is None:
        return tuple(range(len(dims)))
    return tuple(dims.index(a) for a in axes)


def _along(values: Sequence[float], dims: Sequence[str], axis: str) -> np.ndarray:
    shape = [1] * len(dims)
    shape[dims.index(axis)] = len(values)
    return np.asarray(values, dtype=np.float64).reshape(shape)


def _param(value, dims: Sequence[str], axis: str | None):
    return _along(value, dims, axis) if isinstance(value, (list, tuple)) else value


def apply_op(
    x: np.ndarray, dims: Sequence[str], o: Op, *, raw: np.ndarray, tensors: Mapping[str, np.ndarray]
) -> np.ndarray:
    """Apply one op to ``x`` (axes ``dims``); ``raw`` is the unprocessed tensor, ``tensors`` the unprocessed
    inputs by id (for ``reference_tensor``), all with the same ``dims``."""
    k = o.kwargs
    axis = k.get("axis")
    reduce = k.get("axes")
    if k.get("mode") == "per_dataset":  # format 0.4: per-dataset statistics reduce over the batch too
        reduce = ("batch", *reduce)
    axes = _reduce_axes(dims, reduce)
    if o.name == "binarize":
        return (x > _param(k["threshold"], dims, axis)).astype(np.float64)
    if o.name == "clip":
        lo = k.get("min")
        hi = k.get("max")
        if "min_percentile" in k:
            lo = np.percentile(raw, k["min_percentile"], axis=axes, keepdims=True, method="inverted_cdf")
        if "max_percentile" in k:
            hi = np.percentile(raw, k["max_percentile"], axis=axes, keepdims=True, method="inverted_cdf")
        return np.clip(x, lo, hi)
    if o.name == "ensure_dtype":
        return x.astype(k["dtype"])
    if o.name == "fixed_zero_mean_unit_variance":
        return (x - _param(k["mean"], dims, axis)) / (_param(k["std"], dims, axis) + 1e-6)
    if o.name == "scale_linear":
        return x * _param(k.get("gain", 1.0), dims, axis) + _param(k.get("offset", 0.0), dims, axis)
    if o.name == "sigmoid":
        return 1.0 / (1.0 + np.exp(-x))
    if o.name == "softmax":
        ax = dims.index(k.get("axis", "channel"))
        e = np.exp(x - x.max(axis=ax, keepdims=True))
        return e / e.sum(axis=ax, keepdims=True)
    if o.name == "zero_mean_unit_variance":
        mean, std = raw.mean(axis=axes, keepdims=True), raw.std(axis=axes, keepdims=True)
        return (x - mean) / (std + k.get("eps", 1e-6))
    if o.name == "scale_range":
        ref = tensors[k["reference_tensor"]] if k.get("reference_tensor") else raw
        lo = np.percentile(ref, k.get("min_percentile", 0.0), axis=axes, keepdims=True)
        hi = np.percentile(ref, k.get("max_percentile", 100.0), axis=axes, keepdims=True)
        return (x - lo) / (hi - lo + k.get("eps", 1e-6))
    if o.name == "scale_mean_variance":
        ref = tensors[k["reference_tensor"]]
        eps = k.get("eps", 1e-6)
        mean, std = raw.mean(axis=axes, keepdims=True), raw.std(axis=axes, keepdims=True)
        rmean, rstd = ref.mean(axis=axes, keepdims=True), ref.std(axis=axes, keepdims=True)
        return (x - mean) / (std + eps) * (rstd + eps) + rmean
    raise ValueError(f"no reference for op {o.name!r}")


def apply_ops(
    x: np.ndarray,
    dims: Sequence[str],
    ops: Sequence[Op],
    *,
    tensors: Mapping[str, np.ndarray],
    stats_from: np.ndarray | None = None,
) -> np.ndarray:
    """Apply a chain of ops in float64 (``ensure_dtype`` casts where it stands); statistics are those of
    ``stats_from`` when given (e.g. every sample seen so far, for running per-dataset statistics), else of
    ``x``."""
    y = np.asarray(x, dtype=np.float64)
    raw = y if stats_from is None else np.asarray(stats_from, dtype=np.float64)
    for o in ops:
        y = apply_op(y if y.dtype.kind == "f" else y.astype(np.float64), dims, o, raw=raw, tensors=tensors)
        if o.name != "ensure_dtype":
            y = np.asarray(y, dtype=np.float64)
    return y

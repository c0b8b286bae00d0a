"""Shared param types: thresholds that are a number or ``"auto"`` (Otsu), and their resolution."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import AfterValidator, BaseModel


@dataclass(frozen=True)
class Range:
    """Inclusive numeric range checked on the numeric branch of a threshold (``"auto"`` passes)."""

    lo: float | None
    hi: float | None

    def __call__(self, value: Any) -> Any:
        if isinstance(value, str):
            return value
        if self.lo is not None and value < self.lo:
            raise ValueError(f"must be >= {self.lo} or 'auto'")
        if self.hi is not None and value > self.hi:
            raise ValueError(f"must be <= {self.hi} or 'auto'")
        return value


Threshold = Annotated[float | Literal["auto"], AfterValidator(Range(0.0, 1.0))]
"""A probability threshold in [0, 1], or ``"auto"`` for Otsu's threshold of the channel."""

SignedThreshold = Annotated[float | Literal["auto"], AfterValidator(Range(-1.0, 1.0))]
"""A threshold on a signed, normalised distance (Dv2) in [-1, 1], or ``"auto"``."""

DistanceThreshold = Annotated[float | Literal["auto"], AfterValidator(Range(0.0, None))]
"""A threshold on a distance channel (>= 0; normalised D lies in (0, 1]), or ``"auto"``."""


def otsu(values: np.ndarray, *, bins: int = 256) -> float:
    """Otsu's threshold of ``values`` (maximises the between-class variance of a ``bins`` histogram)."""
    flat = np.asarray(values, np.float64).ravel()
    lo, hi = float(flat.min()), float(flat.max())
    if hi <= lo:
        return lo
    hist, edges = np.histogram(flat, bins=bins, range=(lo, hi))
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist).astype(np.float64)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * centres)
    mean0 = m0 / np.maximum(w0, 1)
    mean1 = (m0[-1] - m0) / np.maximum(w1, 1)
    between = w0 * w1 * (mean0 - mean1) ** 2
    return float(centres[int(np.argmax(between[:-1]))])


def resolve_threshold(value: float | str, channel: np.ndarray) -> float:
    """A number stays itself; ``"auto"`` becomes Otsu's threshold of ``channel``."""
    if isinstance(value, str):
        return otsu(channel)
    return float(value)


def field_range(model: type[BaseModel], name: str) -> tuple[float | None, float | None]:
    """The ``(lo, hi)`` range of a field (``Field(ge=, le=)`` or a :class:`Range`), None where open."""
    import typing

    info = model.model_fields[name]
    metadata = list(info.metadata)
    for arg in typing.get_args(info.annotation) or ():
        metadata += list(getattr(arg, "__metadata__", ()))
    lo = hi = None
    for meta in metadata:
        lo = getattr(meta, "ge", getattr(meta, "gt", lo))
        hi = getattr(meta, "le", getattr(meta, "lt", hi))
        func = getattr(meta, "func", None)
        if isinstance(func, Range):
            lo, hi = func.lo, func.hi
    return lo, hi

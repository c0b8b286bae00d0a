"""Axis size rules of a bioimage.io model and the tile sizes they allow.

A model input axis is either fixed (``512``), parameterized (``min + n*step``) or a reference to another axis
(``size = ref_size * ref_scale / scale + offset``). Outputs are fixed, references (usually to an input axis,
possibly scaled, with a halo to crop) or data dependent. These small frozen dataclasses are what the tiling
code works with; :func:`rule_from_spec` builds them from bioimageio.spec's axis objects.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

SizeKind = Literal["fixed", "parameterized", "reference", "data_dependent", "any"]


@dataclass(frozen=True)
class SizeRule:
    """How long one tensor axis may or must be."""

    kind: SizeKind
    size: int | None = None
    """Fixed size (``kind == "fixed"``)."""
    min: int | None = None
    """Smallest size (``parameterized``; lower bound for ``data_dependent``)."""
    step: int | None = None
    """Size increment (``parameterized``)."""
    tensor: str | None = None
    """Referenced tensor id (``reference``)."""
    axis: str | None = None
    """Referenced axis id (``reference``)."""
    ratio: Fraction = Fraction(1)
    """``ref_scale / scale``: how many pixels of this axis per pixel of the referenced one (``reference``)."""
    offset: int = 0
    """Added after scaling (``reference``); negative for models that crop their output."""

    def _fixed_size(self) -> int:
        if self.size is None:
            raise ValueError("a fixed size rule needs a size")
        return self.size

    def _min_step(self) -> tuple[int, int]:
        if self.min is None or self.step is None:
            raise ValueError("a parameterized size rule needs min and step")
        return self.min, self.step

    @property
    def target(self) -> tuple[str, str]:
        """``(tensor, axis)`` a ``reference`` rule refers to."""
        if self.tensor is None or self.axis is None:
            raise ValueError("a reference size rule needs a tensor and an axis")
        return self.tensor, self.axis

    def is_valid(self, n: int) -> bool:
        """True when ``n`` is an allowed size (references are checked by resolving them first)."""
        if self.kind == "fixed":
            return n == self.size
        if self.kind == "parameterized":
            lo, step = self._min_step()
            return n >= lo and (n - lo) % step == 0
        if self.kind == "data_dependent":
            return n >= (self.min or 1)
        return n >= 1

    def smallest_valid_at_least(self, n: int) -> int | None:
        """The smallest valid size ``>= n``; ``None`` when there is none (a fixed size smaller than ``n``)."""
        if self.kind == "fixed":
            size = self._fixed_size()
            return size if size >= n else None
        if self.kind == "parameterized":
            lo, step = self._min_step()
            if n <= lo:
                return lo
            return lo + math.ceil((n - lo) / step) * step
        return max(n, 1)

    def largest_valid_at_most(self, n: int) -> int | None:
        """The largest valid size ``<= n``; ``None`` when even the smallest is larger."""
        if self.kind == "fixed":
            size = self._fixed_size()
            return size if size <= n else None
        if self.kind == "parameterized":
            lo, step = self._min_step()
            if n < lo:
                return None
            return lo + ((n - lo) // step) * step
        return n if n >= 1 else None

    @property
    def granularity(self) -> int:
        """The grid tile origins are aligned to, so that pooling layers see the same phase in every tile.

        ``step`` for parameterized sizes; for fixed sizes the largest power of two dividing the size (at most
        32): a fixed-size U-Net's pooling factor is not written down anywhere.
        """
        if self.kind == "parameterized":
            return int(self._min_step()[1])
        if self.kind == "fixed":
            size = self._fixed_size()
            g = 1
            while size % (g * 2) == 0 and g < 32:
                g *= 2
            return g
        return 1

    def describe(self) -> str:
        """Human readable rule, e.g. ``512``, ``64+n*16``, ``= raw.y``."""
        if self.kind == "fixed":
            return str(self.size)
        if self.kind == "parameterized":
            return f"{self.min}+n*{self.step}"
        if self.kind == "reference":
            scale = "" if self.ratio == 1 else f"*{self.ratio}"
            off = "" if not self.offset else f"{self.offset:+d}"
            return f"={self.tensor}.{self.axis}{scale}{off}"
        if self.kind == "data_dependent":
            return "data dependent"
        return "any"


def rule_from_spec(axis, all_axes: dict[tuple[str, str], object]) -> SizeRule:
    """Build a :class:`SizeRule` from a bioimageio.spec v0.5 axis.

    Parameters
    ----------
    axis : a ``bioimageio.spec.model.v0_5`` input or output axis.
    all_axes : every axis of the model keyed by ``(tensor_id, axis_id)`` (to read the scale of referenced
    axes).
    """
    from bioimageio.spec.model import v0_5

    size = getattr(axis, "size", None)
    if axis.type == "batch":
        return SizeRule("fixed", size=1) if size == 1 else SizeRule("any")
    if isinstance(size, int):
        return SizeRule("fixed", size=int(size))
    if isinstance(size, v0_5.ParameterizedSize):
        return SizeRule("parameterized", min=int(size.min), step=int(size.step))
    if isinstance(size, v0_5.SizeReference):
        ref = all_axes.get((str(size.tensor_id), str(size.axis_id)))
        ref_scale = getattr(ref, "scale", 1.0) if ref is not None else 1.0
        own_scale = getattr(axis, "scale", 1.0)
        ratio = Fraction(ref_scale).limit_denominator(1000) / Fraction(own_scale).limit_denominator(1000)
        return SizeRule(
            "reference",
            tensor=str(size.tensor_id),
            axis=str(size.axis_id),
            ratio=ratio,
            offset=int(size.offset),
        )
    if isinstance(size, v0_5.DataDependentSize):
        return SizeRule("data_dependent", min=int(size.min))
    return SizeRule("any")

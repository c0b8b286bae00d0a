"""Target codes: which channels a model predicts, in which order, and how to make them from labels."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from runner.errors import UserError

ContourMode = Literal["inner", "thick", "outer"]
DistanceNorm = Literal["instance", "image", "none"]


class TargetOptions(BaseModel):
    """How label images are turned into target channels."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    contour_width: int = Field(
        default=1, ge=1, le=16, description="Width of the contour band (C channel) in pixels."
    )
    contour_mode: ContourMode = Field(
        default="inner",
        description="inner: contour inside each object (B + C = the object); thick: inside and outside; "
        "outer: outside only.",
    )
    distance_norm: DistanceNorm = Field(
        default="instance",
        description="D channel scaling: divide by each object's maximum (0..1), by the image maximum, "
        "or keep "
        "physical units.",
    )
    point_radius: float = Field(
        default=3.0,
        ge=0,
        le=64,
        description="Radius (pixels) of the disk/ball drawn at each object's centre (P channel).",
    )
    resolution: tuple[float, ...] | None = Field(
        default=None, description="Pixel spacing (z,) y, x for distances; None means isotropic unit spacing."
    )
    patch: tuple[int, ...] | None = Field(
        default=None, description="Patch shape for PatchPerPix targets (code PPP)."
    )

    @field_validator("resolution")
    @classmethod
    def _positive(cls, v):
        if v is not None and any(r <= 0 for r in v):
            raise ValueError("resolution values must be > 0")
        return v


@dataclass(frozen=True)
class ChannelSpec:
    """One output channel of a model."""

    name: str
    kind: Literal["binary", "distance", "signed_distance", "patch"]
    activation: Literal["sigmoid", "identity"]
    value_range: tuple[float, float] | None
    description: str


CHANNELS: dict[str, ChannelSpec] = {
    "B": ChannelSpec(
        "B", "binary", "sigmoid", (0.0, 1.0), "object interior: object pixels minus the contour band"
    ),
    "C": ChannelSpec("C", "binary", "sigmoid", (0.0, 1.0), "contour band of each object"),
    "D": ChannelSpec(
        "D",
        "distance",
        "identity",
        None,
        "distance of each object pixel to the object's edge (0 outside objects)",
    ),
    "M": ChannelSpec("M", "binary", "sigmoid", (0.0, 1.0), "foreground mask: every object pixel"),
    "P": ChannelSpec("P", "binary", "sigmoid", (0.0, 1.0), "a disk/ball around each object's centre"),
    "Dv2": ChannelSpec(
        "Dv2",
        "signed_distance",
        "identity",
        (-1.0, 1.0),
        "signed distance: + inside (per-object normalised), 0 on the contour, - in the background",
    ),
}


@dataclass(frozen=True)
class TargetCode:
    """A named set of channels (e.g. ``BCD``) and the function that makes them."""

    name: str
    description: str
    channel_specs: Callable[[TargetOptions], list[ChannelSpec]]
    build: Callable[..., np.ndarray]
    """``build(labels, options, *, overlapping=False) -> (C, (Z,) Y, X) float32``."""
    supports_overlap: bool = False


CODES: dict[str, TargetCode] = {}


def register_code(code: TargetCode) -> TargetCode:
    CODES[code.name] = code
    return code


def split_code(code: str) -> list[str]:
    """``"BCDv2"`` -> ``["B", "C", "Dv2"]``."""
    tokens, i = [], 0
    while i < len(code):
        if code.startswith("Dv2", i):
            tokens.append("Dv2")
            i += 3
        elif code[i] in CHANNELS:
            tokens.append(code[i])
            i += 1
        else:
            raise ValueError(code)
    return tokens


def get_code(name: str) -> TargetCode:
    """The registered target code ``name``; a :class:`UserError` listing the known codes otherwise."""
    if name not in CODES:
        import runner.targets  # noqa: F401  (registers the built-in codes)

    if name not in CODES:
        raise UserError(f"unknown target code {name!r}; known codes: {', '.join(sorted(CODES))}")
    return CODES[name]


def channel_specs(code: str, options: TargetOptions | None = None) -> list[ChannelSpec]:
    """Channel descriptions of ``code`` in output order."""
    return get_code(code).channel_specs(options or TargetOptions())

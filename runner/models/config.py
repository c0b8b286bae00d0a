"""Architecture sections of a recipe (pydantic) and the registry that maps their ``name`` to a builder."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class ArchitectureConfig(BaseModel):
    """Base of every architecture section; ``name`` picks the registered architecture."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    name: str = Field(description="Registered architecture name (see runner.models.ARCHITECTURES).")

    def kwargs(self, *, ndim: int, in_channels: int, activations: list[str]) -> dict:
        """JSON-able keyword arguments of the architecture's ``nn.Module`` class; each subclass defines it."""
        raise NotImplementedError(f"{type(self).__name__} does not define kwargs()")


class UNetConfig(ArchitectureConfig):
    """A U-Net (2D or 3D from the recipe's ``dims``)."""

    name: Literal["unet"] = Field(
        default="unet", description="Architecture name: always 'unet' for this section."
    )
    depth: int = Field(
        default=4,
        ge=1,
        le=6,
        description="Number of 2x poolings; input sizes must be multiples of "
        "2**depth (of the pooling product with 'pooling').",
    )
    features: int = Field(
        default=32, ge=1, le=512, description="Feature maps of the first (full-resolution) level."
    )
    feature_factor: int = Field(
        default=2,
        ge=1,
        le=4,
        description="Feature maps grow by this factor per level down (PatchPerPix's 3D net uses 3).",
    )
    max_features: int = Field(
        default=0, ge=0, le=4096, description="Cap on the feature maps of any level; 0 = no cap."
    )
    norm: Literal["batch", "instance", "group", "none"] = Field(
        default="batch",
        description="Normalisation after each convolution. 'batch' keeps tiled inference exact; "
        "'instance'/'group' use per-tile statistics, so tiled and whole-image outputs differ slightly.",
    )
    groups: int = Field(
        default=8,
        ge=1,
        le=64,
        description="Groups for 'group' normalisation (reduced to a divisor of the channel count).",
    )
    dropout: float = Field(
        default=0.0, ge=0.0, lt=1.0, description="Dropout probability inside each conv block (0 = off)."
    )
    residual: bool = Field(
        default=False, description="Residual (ResNet-style) connections inside each conv block."
    )
    up_features: Literal["halve", "constant"] = Field(
        default="halve",
        description="'halve': the upward path returns to each level's feature count (classic U-Net); "
        "'constant': it keeps the bottleneck's count (PatchPerPix 'ppp', for many output channels).",
    )
    upsampling: Literal["transposed", "nearest"] = Field(
        default="transposed",
        description="'transposed': learned 2x transposed convolution; 'nearest': nearest "
        "neighbour + 1x1 convolution.",
    )
    pooling: list[tuple[int, ...]] | None = Field(
        default=None,
        description="Per level, the pooling factor of each spatial axis, e.g. [[1,2,2],[1,2,2],[2,2,2]] "
        "for anisotropic 3D; null = 2 along every axis.",
    )

    @field_validator("pooling")
    @classmethod
    def _pool_factors(cls, v):
        if v is not None and any(f < 1 or f > 4 for p in v for f in p):
            raise ValueError("pooling factors must be between 1 and 4")
        return v

    @model_validator(mode="after")
    def _pool_levels(self):
        if self.pooling is not None and len(self.pooling) != self.depth:
            raise ValueError(f"pooling has {len(self.pooling)} levels but depth is {self.depth}")
        return self

    def pool_factors(self, ndim: int) -> list[list[int]]:
        """Pooling factor per level and axis, ``depth x ndim``."""
        if self.pooling is None:
            return [[2] * ndim for _ in range(self.depth)]
        bad = [p for p in self.pooling if len(p) != ndim]
        if bad:
            raise ValueError(f"pooling entries must have {ndim} factors for {ndim}D data, got {bad[0]}")
        return [list(p) for p in self.pooling]

    def kwargs(self, *, ndim: int, in_channels: int, activations: list[str]) -> dict:
        """JSON-able keyword arguments of :class:`runner.models.unet.UNet`."""
        return {
            "ndim": ndim,
            "in_channels": in_channels,
            "activations": list(activations),
            "depth": self.depth,
            "features": self.features,
            "feature_factor": self.feature_factor,
            "max_features": self.max_features,
            "norm": self.norm,
            "groups": self.groups,
            "dropout": self.dropout,
            "residual": self.residual,
            "up_features": self.up_features,
            "upsampling": self.upsampling,
            "pooling": self.pool_factors(ndim) if self.pooling is not None else [],
        }


@dataclass(frozen=True)
class Architecture:
    """A registered architecture: its config model, and where its ``nn.Module`` class lives."""

    name: str
    config: type[ArchitectureConfig]
    module: str
    """Import path of the self-contained module that defines the network (imports only torch)."""
    class_name: str
    geometry: Callable[[Any, int], list[list[tuple[str, int]]]]
    """``geometry(config, ndim)`` -> per axis, the layers of the deepest path (see runner.models.geometry);
    ``config`` is an instance of :attr:`config`."""


ARCHITECTURES: dict[str, Architecture] = {}


def register_architecture(arch: Architecture) -> Architecture:
    """Add an architecture to the registry (keyed by ``arch.name``)."""
    ARCHITECTURES[arch.name] = arch
    return arch

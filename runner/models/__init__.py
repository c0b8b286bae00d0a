"""Networks (U-Net 2D/3D) built from a recipe's architecture section; torch is imported only when building.

>>> from runner.models import UNetConfig, build_model, output_activations
>>> acts = output_activations("BCD")                      # ['sigmoid', 'sigmoid', 'identity']
>>> net = build_model(UNetConfig(depth=3, features=16), ndim=2, in_channels=1, activations=acts)
>>> size_rule(UNetConfig(depth=3), 2)                      # SizeRule(min=(8, 8), step=(8, 8))

The network's output is what post-processing reads: sigmoid on binary channels (B, C, M, P), identity on
distances (D, Dv2), and a softmax over the class channels when the recipe asks for a class head.
``net.logits(x)`` returns the values before those activations (used by the training losses).
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING

from runner.models.config import (
    ARCHITECTURES,
    Architecture,
    ArchitectureConfig,
    UNetConfig,
    register_architecture,
)
from runner.models.geometry import SizeRule, halo, receptive_field, size_rule, unet_layers

if TYPE_CHECKING:
    from torch import nn

    from runner.targets import ChannelSpec, TargetOptions

register_architecture(
    Architecture(
        name="unet",
        config=UNetConfig,
        module="runner.models.unet",
        class_name="UNet",
        geometry=unet_layers,
    )
)


def get_architecture(name: str) -> Architecture:
    """The registered architecture ``name``; a :class:`~runner.errors.UserError` listing the known ones."""
    from runner.errors import UserError

    if name not in ARCHITECTURES:
        raise UserError(f"unknown architecture {name!r}; known: {', '.join(sorted(ARCHITECTURES))}")
    return ARCHITECTURES[name]


def output_activations(
    code: str,
    *,
    options: TargetOptions | None = None,
    n_classes: int = 0,
    specs: list[ChannelSpec] | None = None,
) -> list[str]:
    """Activation per output channel: the target code's channels, then ``n_classes`` softmax channels.

    A class head is added only for ``n_classes > 2`` (BiaPy's N_CLASSES counts the background class).
    """
    from runner.targets import channel_specs

    specs = specs if specs is not None else channel_specs(code, options)
    acts: list[str] = [s.activation for s in specs]
    if n_classes > 2:
        acts += ["softmax"] * n_classes
    return acts


def model_kwargs(config: ArchitectureConfig, *, ndim: int, in_channels: int, activations: list[str]) -> dict:
    """JSON-able keyword arguments of the architecture's ``nn.Module`` class."""
    return config.kwargs(ndim=ndim, in_channels=in_channels, activations=activations)


def build_model(
    config: ArchitectureConfig, *, ndim: int, in_channels: int, activations: list[str]
) -> nn.Module:
    """The network for ``config``.

    Input ``(B, in_channels, (Z,) Y, X)``, output ``(B, len(activations), (Z,) Y, X)``.
    """
    arch = get_architecture(config.name)
    cls = getattr(importlib.import_module(arch.module), arch.class_name)
    return cls(**model_kwargs(config, ndim=ndim, in_channels=in_channels, activations=activations))


def architecture_source(config: ArchitectureConfig) -> tuple[Path, str]:
    """Path of the self-contained source file that defines the network, and the class name in it.

    The file imports only torch, so it can be shipped as a bioimage.io ``pytorch_state_dict`` architecture.
    """
    arch = get_architecture(config.name)
    spec = importlib.util.find_spec(arch.module)
    if spec is None or spec.origin is None:
        raise ImportError(f"cannot find the source file of module {arch.module!r}")
    return Path(spec.origin), arch.class_name


__all__ = [
    "ARCHITECTURES",
    "Architecture",
    "ArchitectureConfig",
    "SizeRule",
    "UNetConfig",
    "architecture_source",
    "build_model",
    "get_architecture",
    "halo",
    "model_kwargs",
    "output_activations",
    "receptive_field",
    "register_architecture",
    "size_rule",
]

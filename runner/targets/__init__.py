"""Instance labels -> model target channels (B, C, D, M, P, Dv2 and their combinations; PPP patches).

>>> from runner.targets import make_targets
>>> channels = make_targets(labels, "BCD")          # (3, Y, X) float32
"""

from __future__ import annotations

import numpy as np

from runner.targets.channels import STANDARD_CODES, make_channels
from runner.targets.codes import (
    CHANNELS,
    CODES,
    ChannelSpec,
    TargetCode,
    TargetOptions,
    channel_specs,
    get_code,
    register_code,
    split_code,
)
from runner.targets.gradient_anomaly import GradientAnomalyOptions, gradient_anomaly_weights
from runner.targets.ppp import ppp_targets  # noqa: F401  (registers the PatchPerPix code PPP)
from runner.targets.writer import TargetsWritten, write_targets


def make_targets(
    labels: np.ndarray, code: str, options: TargetOptions | None = None, *, overlapping: bool = False
) -> np.ndarray:
    """Target channels ``(C, (Z,) Y, X)`` float32 for ``labels`` under target ``code`` (e.g. ``"BCD"``).

    ``overlapping=True`` means ``labels`` is an overlapping stack ``(N, (Z,) Y, X)`` (codes that allow it).
    """
    return get_code(code).build(labels, options or TargetOptions(), overlapping=overlapping)


__all__ = [
    "CHANNELS",
    "CODES",
    "STANDARD_CODES",
    "ChannelSpec",
    "GradientAnomalyOptions",
    "TargetCode",
    "TargetOptions",
    "TargetsWritten",
    "channel_specs",
    "get_code",
    "gradient_anomaly_weights",
    "make_channels",
    "make_targets",
    "register_code",
    "split_code",
    "write_targets",
]

"""Tiny torch networks for the conformance packages (their source travels in the packages with state-dict
weights, so it is kept as text and imported from a temporary file; TorchScript reads the source too)."""

from __future__ import annotations

import importlib.util
import sys
import tempfile
from pathlib import Path
from typing import Any

ARCHITECTURE_SOURCE = '''
from typing import List, Tuple

import torch
from torch import nn


class Body(nn.Module):
    """conv (+ norm) - relu, then a pooled branch added back (kind "local"), or a second valid conv
    (kind "valid"); finally x2 down- or up-sampling for kinds "down" / "up"."""

    def __init__(self, ndim: int, cin: int, width: int, kind: str, norm: str):
        super().__init__()
        conv = nn.Conv2d if ndim == 2 else nn.Conv3d
        valid = kind == "valid"
        self.enc = conv(cin, width, 3, padding=0 if valid else 1)
        self.norm = nn.Identity()
        if norm == "instance":
            self.norm = (nn.InstanceNorm2d if ndim == 2 else nn.InstanceNorm3d)(width, affine=True)
        elif norm == "group":
            self.norm = nn.GroupNorm(2, width)
        self.down = nn.Identity() if valid else (nn.MaxPool2d if ndim == 2 else nn.MaxPool3d)(2)
        self.mid = conv(width, width, 3, padding=0 if valid else 1)
        self.up = nn.Identity() if valid else nn.Upsample(scale_factor=2.0, mode="nearest")
        self.skip = not valid
        self.resample = nn.Identity()
        if kind == "down":
            self.resample = (nn.AvgPool2d if ndim == 2 else nn.AvgPool3d)(2)
        elif kind == "up":
            self.resample = nn.Upsample(scale_factor=2.0, mode="nearest")

    def forward(self, x):
        e = torch.relu(self.norm(self.enc(x)))
        m = self.up(torch.relu(self.mid(self.down(e))))
        if self.skip:
            m = m + e
        return self.resample(m)


class ConfNet(nn.Module):
    """One input, one output ``(B, C, *space)`` (or channel-last ``(B, *space, C)``)."""

    def __init__(self, ndim: int = 2, in_channels: int = 1, out_channels: int = 2, kind: str = "local",
                 norm: str = "none", channel_last: bool = False, width: int = 4):
        super().__init__()
        self.body = Body(ndim, in_channels, width, kind, norm)
        self.head = (nn.Conv2d if ndim == 2 else nn.Conv3d)(width, out_channels, 1)
        self.channel_last = channel_last
        self.to_first = [0, ndim + 1] + list(range(1, ndim + 1))
        self.to_last = [0] + list(range(2, ndim + 2)) + [1]

    def forward(self, x):
        if self.channel_last:
            x = x.permute(self.to_first)
        y = self.head(self.body(x))
        if self.channel_last:
            y = y.permute(self.to_last)
        return y


class ConfNet2(nn.Module):
    """Two inputs (concatenated along channels), two outputs (one 1x1 head each)."""

    def __init__(self, ndim: int = 2, in_channels: int = 2, out_channels: List[int] = [2, 1],
                 kind: str = "local", norm: str = "none", channel_last: bool = False, width: int = 4):
        super().__init__()
        conv = nn.Conv2d if ndim == 2 else nn.Conv3d
        self.body = Body(ndim, in_channels, width, kind, norm)
        self.head0 = conv(width, out_channels[0], 1)
        self.head1 = conv(width, out_channels[1], 1)
        self.channel_last = channel_last
        self.to_first = [0, ndim + 1] + list(range(1, ndim + 1))
        self.to_last = [0] + list(range(2, ndim + 2)) + [1]

    def forward(self, a, b) -> Tuple[torch.Tensor, torch.Tensor]:
        if self.channel_last:
            a = a.permute(self.to_first)
            b = b.permute(self.to_first)
        f = self.body(torch.cat([a, b], dim=1))
        y0 = self.head0(f)
        y1 = self.head1(f)
        if self.channel_last:
            y0 = y0.permute(self.to_last)
            y1 = y1.permute(self.to_last)
        return y0, y1
'''

_MODULE: Any = None


def architecture_module() -> Any:
    """The module defining ``ConfNet`` and ``ConfNet2`` (imported once from a temporary file)."""
    global _MODULE
    if _MODULE is None:
        path = Path(tempfile.mkdtemp(prefix="runner-conformance-arch-")) / "conformance_nets.py"
        path.write_text(ARCHITECTURE_SOURCE)
        spec = importlib.util.spec_from_file_location("conformance_nets", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["conformance_nets"] = module
        spec.loader.exec_module(module)
        _MODULE = module
    return _MODULE


def make_net(callable_name: str, kwargs: dict, *, seed: int) -> Any:
    """A freshly initialised network in eval mode (random weights from ``seed``)."""
    import torch

    torch.manual_seed(seed)
    net = getattr(architecture_module(), callable_name)(**kwargs).eval()
    with torch.no_grad():  # affine norm parameters away from their identity defaults
        for name, p in net.named_parameters():
            if "norm" in name:
                p.add_(0.3 * torch.randn_like(p))
    return net

"""A 2D/3D U-Net whose head applies per-channel activations; plain torch, TorchScript- and ONNX-friendly.

This module imports nothing but ``torch`` on purpose: the exporter copies this file verbatim as the
architecture source of a bioimage.io ``pytorch_state_dict`` weight entry, and ``UNet(**kwargs)`` with the
JSON-able keyword arguments from :func:`runner.models.build_model` rebuilds the network anywhere.

Shapes: input ``(B, in_channels, (Z,) Y, X)``, output ``(B, len(activations), (Z,) Y, X)``. Every spatial
size must be a multiple of the product of the pooling factors (``2**depth`` by default); pad before calling.
"""

# ruff: noqa: B905  (TorchScript has no zip(strict=))

import torch
from torch import nn

ACTIVATION_CODES = {"identity": 0, "sigmoid": 1, "tanh": 2, "softmax": 3, "relu": 4}


def _conv(ndim: int, cin: int, cout: int, kernel: int, bias: bool = True) -> nn.Module:
    cls = nn.Conv3d if ndim == 3 else nn.Conv2d
    return cls(cin, cout, kernel_size=kernel, padding=kernel // 2, bias=bias)


def _norm(ndim: int, kind: str, channels: int, groups: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm3d(channels) if ndim == 3 else nn.BatchNorm2d(channels)
    if kind == "instance":
        return (
            nn.InstanceNorm3d(channels, affine=True)
            if ndim == 3
            else nn.InstanceNorm2d(channels, affine=True)
        )
    if kind == "group":
        g = max(1, min(groups, channels))
        while channels % g:
            g -= 1
        return nn.GroupNorm(g, channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}; use batch, instance, group or none")


def _conv_transpose(ndim: int, cin: int, cout: int, factor: list[int]) -> nn.Module:
    """Transposed convolution with kernel and stride ``factor`` (one entry per spatial axis)."""
    if ndim == 3:
        z, y, x = factor
        return nn.ConvTranspose3d(cin, cout, kernel_size=(z, y, x), stride=(z, y, x))
    y, x = factor
    return nn.ConvTranspose2d(cin, cout, kernel_size=(y, x), stride=(y, x))


class ConvBlock(nn.Module):
    """Two 3x3(x3) convolutions, each followed by normalisation and ReLU; optionally residual."""

    def __init__(
        self,
        ndim: int,
        cin: int,
        cout: int,
        norm: str = "batch",
        groups: int = 8,
        dropout: float = 0.0,
        residual: bool = False,
    ):
        super().__init__()
        bias = norm == "none"
        self.conv1 = _conv(ndim, cin, cout, 3, bias)
        self.norm1 = _norm(ndim, norm, cout, groups)
        self.conv2 = _conv(ndim, cout, cout, 3, bias)
        self.norm2 = _norm(ndim, norm, cout, groups)
        self.act = nn.ReLU(inplace=True)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.residual = residual
        self.skip = _conv(ndim, cin, cout, 1, True) if residual and cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.norm1(self.conv1(x)))
        y = self.drop(y)
        y = self.norm2(self.conv2(y))
        if self.residual:
            y = y + self.skip(x)
        return self.act(y)


class Upsample(nn.Module):
    """Upsample by ``factor`` and map ``cin`` to ``cout`` channels (transposed conv or nearest + 1x1 conv)."""

    def __init__(self, ndim: int, cin: int, cout: int, factor: list[int], mode: str = "transposed"):
        super().__init__()
        self.mode = mode
        self.up: nn.Module
        self.proj: nn.Module
        if mode == "transposed":
            self.up = _conv_transpose(ndim, cin, cout, factor)
            self.proj = nn.Identity()
        elif mode == "nearest":
            self.up = nn.Upsample(scale_factor=tuple(float(f) for f in factor), mode="nearest")
            self.proj = _conv(ndim, cin, cout, 1, True)
        else:
            raise ValueError(f"unknown upsampling {mode!r}; use transposed or nearest")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.up(x))


class Head(nn.Module):
    """1x1 convolution to one channel per activation, then the activation of each channel.

    ``activations`` names one activation per output channel (``identity``, ``sigmoid``, ``tanh``, ``relu``,
    ``softmax``). Neighbouring channels with the same activation form one segment; a ``softmax`` segment is
    normalised across its channels (a class head), the others act per channel.
    """

    def __init__(self, ndim: int, cin: int, activations: list[str]):
        super().__init__()
        self.conv = _conv(ndim, cin, len(activations), 1, True)
        segments: list[tuple[int, int, int]] = []
        start = 0
        for i in range(1, len(activations) + 1):
            if i == len(activations) or activations[i] != activations[start]:
                if activations[start] not in ACTIVATION_CODES:
                    raise ValueError(f"unknown activation {activations[start]!r}")
                segments.append((start, i, ACTIVATION_CODES[activations[start]]))
                start = i
        self.segments = segments
        self.activations = list(activations)

    def activate(self, logits: torch.Tensor) -> torch.Tensor:
        if len(self.segments) == 1 and self.segments[0][2] == 0:
            return logits
        parts: list[torch.Tensor] = []
        for start, stop, code in self.segments:
            y = logits[:, start:stop]
            if code == 1:
                y = torch.sigmoid(y)
            elif code == 2:
                y = torch.tanh(y)
            elif code == 3:
                y = torch.softmax(y, dim=1)
            elif code == 4:
                y = torch.relu(y)
            parts.append(y)
        return torch.cat(parts, dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activate(self.conv(x))


class UNet(nn.Module):
    """U-Net for 2D (``ndim=2``) or 3D (``ndim=3``) images.

    Parameters
    ----------
    ndim : 2 or 3.
    in_channels : number of input channels.
    activations : one activation name per output channel (see :class:`Head`).
    depth : number of poolings (levels below the top one).
    features : feature maps at the top level.
    feature_factor : multiplier of the feature maps per level down.
    max_features : cap on the feature maps of any level (0 = no cap).
    norm : ``batch``, ``instance``, ``group`` or ``none``.
    groups : groups for ``group`` normalisation.
    dropout : dropout probability inside each block (0 = off).
    residual : residual connections inside each block.
    up_features : ``halve`` (each level up returns to that level's count, the classic U-Net) or
        ``constant`` (the upward path keeps the bottleneck's count, as PatchPerPix's ``ppp`` network does).
    upsampling : ``transposed`` (learned) or ``nearest`` (+ 1x1 conv).
    pooling : per level, the pooling factor of each spatial axis (``[[1, 2, 2], ...]`` for anisotropic
        3D); empty means 2 along every axis at every level.
    """

    def __init__(
        self,
        ndim: int = 2,
        in_channels: int = 1,
        activations: list[str] | tuple[str, ...] = ("sigmoid",),  # noqa: B006
        depth: int = 4,
        features: int = 32,
        feature_factor: int = 2,
        max_features: int = 0,
        norm: str = "batch",
        groups: int = 8,
        dropout: float = 0.0,
        residual: bool = False,
        up_features: str = "halve",
        upsampling: str = "transposed",
        pooling: list[list[int]] | tuple[()] = (),
    ):  # noqa: B006
        super().__init__()
        if ndim not in (2, 3):
            raise ValueError(f"ndim must be 2 or 3, got {ndim}")
        if up_features not in ("halve", "constant"):
            raise ValueError(f"up_features must be halve or constant, got {up_features!r}")
        pools = [list(p) for p in pooling] if len(pooling) > 0 else [[2] * ndim for _ in range(depth)]
        if len(pools) != depth or any(len(p) != ndim for p in pools):
            raise ValueError(f"pooling needs {depth} entries of {ndim} factors, got {pooling}")
        widths = [features * feature_factor**i for i in range(depth + 1)]
        if max_features > 0:
            widths = [min(w, max_features) for w in widths]
        self.ndim = ndim
        self.depth = depth
        pool_cls = nn.MaxPool3d if ndim == 3 else nn.MaxPool2d
        self.down = nn.ModuleList()
        self.pools = nn.ModuleList()
        cin = in_channels
        for level in range(depth):
            self.down.append(ConvBlock(ndim, cin, widths[level], norm, groups, dropout, residual))
            self.pools.append(pool_cls(kernel_size=tuple(pools[level]), stride=tuple(pools[level])))
            cin = widths[level]
        self.bottom = ConvBlock(ndim, cin, widths[depth], norm, groups, dropout, residual)
        self.ups = nn.ModuleList()
        self.up_blocks = nn.ModuleList()
        cin = widths[depth]
        for level in range(depth - 1, -1, -1):
            cout = widths[level] if up_features == "halve" else widths[depth]
            self.ups.append(Upsample(ndim, cin, cout, pools[level], upsampling))
            self.up_blocks.append(
                ConvBlock(ndim, cout + widths[level], cout, norm, groups, dropout, residual)
            )
            cin = cout
        self.head = Head(ndim, cin, list(activations))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Output before the head's activations (what the training losses use)."""
        skips: list[torch.Tensor] = []
        for block, pool in zip(self.down, self.pools):
            x = block(x)
            skips.append(x)
            x = pool(x)
        x = self.bottom(x)
        i = 0
        for up, block in zip(self.ups, self.up_blocks):
            x = up(x)
            x = block(torch.cat([skips[len(skips) - 1 - i], x], dim=1))
            i += 1
        return self.head.conv(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head.activate(self.logits(x))

"""Input-size rules, receptive field and halo of the registered architectures.

The receptive field is computed exactly by following, backwards from one output pixel, the deepest path
of the network (the skip connections only add shorter paths): a 'same' convolution of kernel ``k`` widens
the interval by ``k // 2`` on both sides at its resolution, a pooling by ``p`` maps low-resolution pixel
``i`` to ``[i*p, i*p + p - 1]``, and an upsampling by ``p`` maps high-resolution pixel ``y`` to ``y // p``.
Because pooling windows are aligned to multiples of the step, the interval depends on the output pixel's
position modulo the step; we take the worst case over all positions.
"""

from __future__ import annotations

from dataclasses import dataclass

from runner.models.config import ARCHITECTURES, ArchitectureConfig, UNetConfig

Layer = tuple[str, int]


@dataclass(frozen=True)
class SizeRule:
    """Valid input sizes per spatial axis: ``min + n * step`` for n = 0, 1, 2, ..."""

    min: tuple[int, ...]
    step: tuple[int, ...]

    def valid(self, shape: tuple[int, ...]) -> bool:
        """Whether ``shape`` ((Z,) Y, X) is accepted by the network."""
        return all(s >= m and (s - m) % st == 0 for s, m, st in zip(shape, self.min, self.step, strict=True))

    def round_up(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """Smallest valid shape that is at least ``shape`` along every axis."""
        out = []
        for s, m, st in zip(shape, self.min, self.step, strict=True):
            n = max(0, -(-(s - m) // st))
            out.append(m + n * st)
        return tuple(out)


def unet_layers(config: UNetConfig, ndim: int) -> list[list[Layer]]:
    """Per axis, the layers of the U-Net's deepest path from input to output."""
    pools = config.pool_factors(ndim)
    out = []
    for axis in range(ndim):
        layers: list[Layer] = []
        for level in range(config.depth):
            layers += [("conv", 3), ("conv", 3), ("pool", pools[level][axis])]
        layers += [("conv", 3), ("conv", 3)]
        for level in range(config.depth - 1, -1, -1):
            layers += [("up", pools[level][axis]), ("conv", 3), ("conv", 3)]
        out.append(layers)
    return out


def _layers(config: ArchitectureConfig, ndim: int) -> list[list[Layer]]:
    return ARCHITECTURES[config.name].geometry(config, ndim)


def size_rule(config: ArchitectureConfig, ndim: int) -> SizeRule:
    """Valid input sizes: multiples of the pooling product (``2**depth``), at least one step."""
    steps = []
    for layers in _layers(config, ndim):
        step = 1
        for kind, p in layers:
            if kind == "pool":
                step *= p
        steps.append(step)
    return SizeRule(min=tuple(steps), step=tuple(steps))


def _reach(layers: list[Layer], y: int) -> tuple[int, int]:
    """Input interval ``[lo, hi]`` that output pixel ``y`` depends on (1D, deepest path)."""
    lo, hi = y, y
    for kind, k in reversed(layers):
        if kind == "conv":
            lo, hi = lo - k // 2, hi + k // 2
        elif kind == "up":
            lo, hi = lo // k, hi // k
        elif kind == "pool":
            lo, hi = lo * k, hi * k + k - 1
    return lo, hi


def _extent(layers: list[Layer]) -> tuple[int, int, int]:
    step = 1
    for kind, p in layers:
        if kind == "pool":
            step *= p
    rf, left, right = 0, 0, 0
    for y in range(step):
        lo, hi = _reach(layers, y)
        rf, left, right = max(rf, hi - lo + 1), max(left, y - lo), max(right, hi - y)
    return rf, left, right


def receptive_field(config: ArchitectureConfig, ndim: int) -> tuple[int, ...]:
    """Receptive field (pixels) of one output pixel along each spatial axis ``(Z,) Y, X``."""
    return tuple(_extent(layers)[0] for layers in _layers(config, ndim))


def halo(config: ArchitectureConfig, ndim: int, *, round_to_step: bool = False) -> tuple[int, ...]:
    """Context each output pixel needs on either side, per axis ``(Z,) Y, X``.

    Tiles whose origins are multiples of the step and that carry this halo on every side reproduce the
    whole-image output exactly in their centre (batch or no normalisation). ``round_to_step=True`` rounds it
    up to a multiple of the step, which keeps the tile origins aligned.
    """
    rule = size_rule(config, ndim)
    out = []
    for layers, step in zip(_layers(config, ndim), rule.step, strict=True):
        _, left, right = _extent(layers)
        h = max(left, right)
        if round_to_step:
            h = -(-h // step) * step
        out.append(h)
    return tuple(out)

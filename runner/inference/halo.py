"""The network's receptive field, measured when the rdf declares no halo; global operations detected.

Two passes over a random probe tile, the second with the centre pixel changed; the output pixels that change
lie within the receptive field of the centre. Their largest distance from the centre (in input pixels) is the
margin tiles need so that stitched outputs equal a whole-image pass. A third pass changes everything far
from the centre (beyond the measured radius) and checks that the centre's outputs stay put: networks with
global operations (instance or group normalisation over space, attention, global pooling) fail that check,
or their single-pixel change already reaches the probe's border at two probe sizes. Such networks are
reported as global (:attr:`ReceptiveField.global_ops`); their margin is capped at a quarter of the probe.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from runner.inference.sizes import SizeRule

PROBE_2D = 256
PROBE_3D = 96


@dataclass(frozen=True)
class ReceptiveField:
    """What the probes found."""

    radius: tuple[int, ...]
    """Context pixels per side and axis (capped at a quarter of the probe for global networks)."""
    global_ops: bool
    """True when outputs depend on input far beyond any local neighbourhood."""
    probe: tuple[int, ...]
    """The largest probe shape used."""
    capped: bool = False
    """True when the radius reached the border of the largest probe the memory budget allows (it is then
    capped at a quarter of the probe, and tiles may differ slightly from a whole-image pass)."""


def probe_shape(rules: Sequence[SizeRule], *, scale: int = 1) -> tuple[int, ...]:
    """A valid tile shape for probing: about 256 px per axis in 2D, 96 in 3D (times ``scale``)."""
    target = (PROBE_2D if len(rules) <= 2 else PROBE_3D) * scale
    shape = []
    for r in rules:
        size = r.smallest_valid_at_least(target)
        if size is None:
            size = r.largest_valid_at_most(target)
        assert size is not None, "a rule without a valid size at least the target has one below it"
        shape.append(int(size))
    return tuple(shape)


Forward = Callable[[list[np.ndarray]], list[np.ndarray]]


def receptive_field(
    forward: Forward,
    *,
    channels: Sequence[int],
    rules: Sequence[SizeRule],
    ratios: Sequence[Sequence[Fraction | int]],
    max_voxels: int | None = None,
) -> ReceptiveField:
    """Measure the receptive field and detect global operations (see the module docstring).

    ``max_voxels`` bounds the second, larger probe (the memory budget); without room for it a radius that
    reaches the first probe's border is capped and reported as such, not as a global network.
    """
    shape = probe_shape(rules)
    radius = measure_receptive_field(forward, channels=channels, shape=shape, ratios=ratios)
    reached = [r >= s // 2 - 1 for r, s in zip(radius, shape, strict=True)]
    if any(reached):
        bigger = probe_shape(rules, scale=2)
        if all(b <= s for b, s, hit in zip(bigger, shape, reached, strict=True) if hit):
            return ReceptiveField(tuple(s // 4 for s in shape), True, shape)
        if max_voxels is not None and math.prod(bigger) > max_voxels:
            return ReceptiveField(tuple(s // 4 for s in shape), False, shape, capped=True)
        radius = measure_receptive_field(forward, channels=channels, shape=bigger, ratios=ratios)
        if any(r >= s // 2 - 1 for r, s in zip(radius, bigger, strict=True)):
            return ReceptiveField(tuple(s // 4 for s in shape), True, bigger)
        return ReceptiveField(radius, False, bigger)
    if _far_input_matters(forward, channels=channels, shape=shape, radius=radius, ratios=ratios):
        return ReceptiveField(tuple(s // 4 for s in shape), True, shape)
    return ReceptiveField(radius, False, shape)


def _far_input_matters(
    forward: Forward,
    *,
    channels: Sequence[int],
    shape: Sequence[int],
    radius: Sequence[int],
    ratios: Sequence[Sequence[Fraction | int]],
) -> bool:
    """Whether rescaling the input beyond the receptive field of a central box changes the box's outputs."""
    rng = np.random.default_rng(1)
    base = [rng.standard_normal((1, c, *shape)).astype(np.float32) for c in channels]
    box = [max(1, (s // 2 - r) // 4) for s, r in zip(shape, radius, strict=True)]
    near = tuple(
        slice(max(s // 2 - b - r - r // 2 - 2, 0), s // 2 + b + r + r // 2 + 2)  # slack for an underestimate
        for s, b, r in zip(shape, box, radius, strict=True)
    )
    far = []
    for b in base:
        x = b * 10.0 + 5.0
        x[(slice(None), slice(None), *near)] = b[(slice(None), slice(None), *near)]
        far.append(x)
    ref, out = forward(base), forward(far)
    for o, (a, c) in enumerate(zip(ref, out, strict=False)):
        a, c = np.asarray(a, np.float64), np.asarray(c, np.float64)
        r = ratios[o] if o < len(ratios) else [1] * len(shape)
        centre = tuple(
            slice(math.floor((s // 2 - bx) * float(q)), max(math.ceil((s // 2 + bx) * float(q)), 1))
            for s, bx, q in zip(shape, box, r, strict=True)
        )
        sel = (slice(None), slice(None), *centre)
        tol = 1e-4 * (1.0 + float(np.abs(a).max()))
        if a.shape == c.shape and float(np.abs(a[sel] - c[sel]).max(initial=0.0)) > tol:
            return True
    return False


def measure_receptive_field(
    forward: Callable[[list[np.ndarray]], list[np.ndarray]],
    *,
    channels: Sequence[int],
    shape: Sequence[int],
    ratios: Sequence[Sequence[Fraction | int]],
    seed: int = 0,
) -> tuple[int, ...]:
    """Receptive-field radius per spatial axis, in input pixels.

    Parameters
    ----------
    forward : canonical forward, ``forward([(1, C_i, *shape) per input]) -> [(1, C_o, *out) per output]``.
    channels : channel count of each input.
    shape : probe tile shape (valid for the model).
    ratios : per output, output pixels per input pixel along each axis.

    Returns
    -------
    tuple of int
        Radius per axis (about ``shape[k] // 2`` where the change reached the probe border).
    """
    rng = np.random.default_rng(seed)
    base = [rng.standard_normal((1, c, *shape)).astype(np.float32) for c in channels]
    ref = forward(base)
    centre = tuple(s // 2 for s in shape)
    radius = [0] * len(shape)
    for delta in (3.0, -3.0):
        probe = [b.copy() for b in base]
        at: tuple[int | slice, ...] = (0, slice(None), *centre)
        probe[0][at] += delta
        out = forward(probe)
        for o, (a, b) in enumerate(zip(ref, out, strict=False)):
            a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
            tol = 1e-5 * (1.0 + float(np.abs(a).max()))
            changed = np.abs(a - b).max(axis=(0, 1)) > tol
            if not changed.any():
                continue
            idx = np.nonzero(changed)
            for k in range(len(shape)):
                r = ratios[o][k] if o < len(ratios) else Fraction(1)
                c_out = (centre[k] + 0.5) * float(r)
                dist = max(abs(float(idx[k].min()) - c_out), abs(float(idx[k].max()) + 1 - c_out))
                radius[k] = max(radius[k], math.ceil(dist / float(r)))
    return tuple(radius)

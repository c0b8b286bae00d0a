"""The network's receptive field, measured, for packages whose rdf declares no halo.

Two passes over a random probe tile, the second with the centre pixel changed; the output pixels that change
lie within the receptive field of the centre. Their largest distance from the centre (in input pixels) is the
margin tiles need so that stitched outputs equal a whole-image pass. Networks with global operations (instance
norm, attention) change everywhere; then the margin is capped at a quarter of the probe and a warning says so.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from fractions import Fraction

import numpy as np

from runner.inference.sizes import SizeRule

PROBE_2D = 256
PROBE_3D = 96


def probe_shape(rules: Sequence[SizeRule]) -> tuple[int, ...]:
    """A valid tile shape for probing: about 256 px per axis in 2D, 96 in 3D."""
    target = PROBE_2D if len(rules) <= 2 else PROBE_3D
    shape = []
    for r in rules:
        size = r.smallest_valid_at_least(target)
        if size is None:
            size = r.largest_valid_at_most(target)
        assert size is not None, "a rule without a valid size at least the target has one below it"
        shape.append(int(size))
    return tuple(shape)


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
        Radius per axis (``shape[k] // 4`` where the change reached the probe border).
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
    capped = []
    for k, s in enumerate(shape):
        if radius[k] >= s // 2 - 1:
            warnings.warn(
                f"the network's receptive field reaches past a {s}-pixel probe along axis {k} "
                "(global operations?); "
                f"using a margin of {s // 4} pixels; tiles may not match a whole-image pass exactly",
                stacklevel=2,
            )
            capped.append(s // 4)
        else:
            capped.append(radius[k])
    return tuple(capped)

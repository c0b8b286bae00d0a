"""From a package's tensor descriptions to what tiling needs: axis layouts, size rules, output geometry.

The engine layout of an image is ``(C, (Z,) Y, X)``. A model tensor has its own axis order (``bcyx``,
``byxc``, ``bczyx``, ...). Tiling works on a *canonical* layout ``(B, C, *spatial)`` where ``C`` gathers the
non-spatial axes (channel, plus singleton time/index axes) and the spatial axes are in ``z, y, x`` order;
:class:`Layout` converts between the canonical and the model's order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from runner.errors import UserError
from runner.inference.package import AxisInfo, Package, TensorInfo
from runner.inference.sizes import SizeRule
from runner.inference.tiling import OutputGeometry, TilePlan
from runner.io import gray_if_lossless


def _transpose(x, perm):
    if list(perm) == list(range(len(perm))):
        return x
    if isinstance(x, np.ndarray):
        return np.transpose(x, perm)
    return x.permute(*perm)


@dataclass(frozen=True)
class Layout:
    """Axis bookkeeping for one tensor."""

    tensor: TensorInfo
    letters: tuple[str, ...]
    """Engine letters (``z``, ``y``, ``x``) of the tensor's space axes, in engine order."""
    space_ids: tuple[str, ...]
    """The model's space axis ids in engine order."""

    @property
    def has_batch(self) -> bool:
        return any(a.type == "batch" for a in self.tensor.axes)

    @property
    def nonspace(self) -> tuple[AxisInfo, ...]:
        return tuple(a for a in self.tensor.axes if a.type not in ("batch", "space"))

    @property
    def canonical_ids(self) -> tuple[str, ...]:
        batch = tuple(a.id for a in self.tensor.axes if a.type == "batch")
        return (*batch, *(a.id for a in self.nonspace), *self.space_ids)

    def to_model(self, x, nonspace_sizes: tuple[int, ...]):
        """Canonical batch ``(B, C, *spatial)`` -> the model's axis order."""
        b, spatial = x.shape[0], tuple(x.shape[2:])
        x = x.reshape(b, *nonspace_sizes, *spatial)
        if not self.has_batch:
            x = x[0]
        ids = self.canonical_ids
        return _transpose(x, [ids.index(a) for a in self.tensor.axis_ids])

    def to_canonical(self, x):
        """The model's axis order -> canonical ``(B, C, *spatial)``; returns also the non-spatial sizes."""
        model_ids = self.tensor.axis_ids
        x = _transpose(x, [model_ids.index(a) for a in self.canonical_ids])
        if not self.has_batch:
            x = x[None]
        n_ns = len(self.nonspace)
        sizes = tuple(int(s) for s in x.shape[1 : 1 + n_ns])
        return x.reshape(x.shape[0], math.prod(sizes), *x.shape[1 + n_ns :]), sizes

    def input_nonspace_sizes(self, channels: int) -> tuple[int, ...]:
        """Sizes of the non-spatial axes of an input given the image's channel count."""
        sizes = []
        for a in self.nonspace:
            if a.type == "channel":
                sizes.append(channels)
            elif a.rule.kind == "fixed" and a.rule.size is not None:
                sizes.append(a.rule.size)
            elif a.rule.is_valid(1):
                sizes.append(1)
            else:
                raise UserError(
                    f"input {self.tensor.id!r} has a {a.type} axis {a.id!r} of size {a.rule.describe()}"
                    ", which runner cannot fill from an image"
                )
        return tuple(sizes)


def _engine_letters(space_ids: list[str]) -> dict[str, str]:
    if set(space_ids) <= {"z", "y", "x"}:
        return {a: a for a in space_ids}
    letters = "zyx"[-len(space_ids) :] if len(space_ids) <= 3 else None
    if letters is None:
        raise UserError(f"model tensors with {len(space_ids)} space axes are not supported")
    return dict(zip(space_ids, letters, strict=True))


@dataclass(frozen=True)
class Geometry:
    """Everything tiling needs to know about a model."""

    letters: tuple[str, ...]
    """Engine letters of the spatial axes, e.g. ``("y", "x")``."""
    rules: tuple[SizeRule, ...]
    """Size rule per spatial axis (of the primary input)."""
    inputs: dict[str, Layout]
    outputs: dict[str, Layout]
    output_geometry: dict[str, OutputGeometry | None]
    """None for outputs whose spatial size does not follow the input (cannot be tiled)."""
    batch_fixed: bool
    """True when the model takes one sample at a time."""

    @property
    def ndim(self) -> int:
        return len(self.letters)

    @property
    def declared_margin(self) -> tuple[int, ...] | None:
        """Input margin the rdf's halos and crops ask for; None when no output declares any."""
        geoms = [g for g in self.output_geometry.values() if g is not None]
        if not any(any(g.halo) or any(c != 0 for c in g.crop) for g in geoms):
            return None
        return tuple(max(0, *(g.margin_needed(k) for g in geoms)) for k in range(self.ndim))

    @property
    def crop_margin(self) -> tuple[int, ...]:
        """Input pixels per side the model itself removes from its outputs (``offset < 0``): the image is
        always extended by this much, so the outputs cover it."""
        geoms = [g for g in self.output_geometry.values() if g is not None]
        return tuple(max(0, *(math.ceil(g.crop_at(k) / g.ratio[k]) for g in geoms)) for k in range(self.ndim))

    @property
    def ratio_align(self) -> tuple[int, ...]:
        """Per axis, the least common multiple of the output scales' denominators (2 for a half-size
        output): padding before the image is a multiple of it, so output pixels stay on the image grid."""
        return tuple(
            math.lcm(1, *(g.ratio[k].denominator for g in self.output_geometry.values() if g is not None))
            for k in range(self.ndim)
        )

    @property
    def granularity(self) -> tuple[int, ...]:
        """Tile-start grid per axis, also a multiple of every output ratio's denominator."""
        out = []
        for k, rule in enumerate(self.rules):
            q = rule.granularity
            for g in self.output_geometry.values():
                if g is not None:
                    q = math.lcm(q, g.ratio[k].denominator)
            out.append(q)
        return tuple(out)

    @property
    def tileable(self) -> bool:
        return all(g is not None for g in self.output_geometry.values())


def build_geometry(pkg: Package) -> Geometry:
    """Derive layouts, rules and output geometry from a package (see :class:`Geometry`)."""
    with_space = [t for t in pkg.inputs if t.space_axes]
    if not with_space:
        raise UserError(
            "the model has no input with space axes; runner runs image-to-image models", path=pkg.source
        )
    primary = with_space[0]
    letter_of = _engine_letters([a.id for a in primary.space_axes])
    order = sorted(letter_of, key=lambda a: "zyx".index(letter_of[a]))
    letters = tuple(letter_of[a] for a in order)
    inputs = {}
    for t in pkg.inputs:
        ids = [a.id for a in t.space_axes]
        if sorted(ids) != sorted(order):
            raise UserError(
                f"input {t.id!r} has space axes {ids}, unlike input {primary.id!r} ({order}); not supported",
                path=pkg.source,
            )
        inputs[t.id] = Layout(t, letters, tuple(order))
    rules = tuple(_resolve_rule(pkg, primary.id, a) for a in order)
    outputs, geoms = {}, {}
    for t in pkg.outputs:
        geom, space_ids = _output_geometry(pkg, t, letter_of, letters)
        geoms[t.id] = geom
        outputs[t.id] = Layout(t, letters, space_ids)
    batch_fixed = any(
        a.type == "batch" and a.rule.kind == "fixed" for t in pkg.inputs for a in t.axes
    ) or not any(a.type == "batch" for t in pkg.inputs for a in t.axes)
    return Geometry(letters, rules, inputs, outputs, geoms, batch_fixed)


def _resolve_rule(pkg: Package, tensor_id: str, axis_id: str, depth: int = 0) -> SizeRule:
    rule = _find_axis(pkg, tensor_id, axis_id).rule
    if rule.kind != "reference":
        return rule
    if depth > 5 or rule.ratio != 1 or rule.offset:
        raise UserError(
            f"input axis {tensor_id}.{axis_id} ({rule.describe()}) is not supported", path=pkg.source
        )
    return _resolve_rule(pkg, *rule.target, depth + 1)


def _find_axis(pkg: Package, tensor_id: str, axis_id: str) -> AxisInfo:
    for t in (*pkg.inputs, *pkg.outputs):
        if t.id == tensor_id:
            return t.axis(axis_id)
    raise UserError(f"the description refers to an unknown tensor {tensor_id!r}", path=pkg.source)


def _trace(pkg: Package, tensor_id: str, axis_id: str, letter_of: dict[str, str], depth: int = 0):
    """Follow size references to an input space axis: (engine letter, ratio, offset) or None."""
    if depth > 5:
        return None
    axis = _find_axis(pkg, tensor_id, axis_id)
    if any(t.id == tensor_id for t in pkg.inputs):
        if axis.type != "space":
            return None
        if axis.rule.kind == "reference":
            return _trace(pkg, *axis.rule.target, letter_of, depth + 1)
        return (letter_of.get(axis_id), Fraction(1), 0)
    if axis.rule.kind != "reference":
        return None
    ref = _trace(pkg, *axis.rule.target, letter_of, depth + 1)
    if ref is None or ref[0] is None:
        return None
    letter, ratio, offset = ref
    return (letter, ratio * axis.rule.ratio, offset * axis.rule.ratio + axis.rule.offset)


def _output_geometry(pkg: Package, t: TensorInfo, letter_of: dict[str, str], letters: tuple[str, ...]):
    traced = {}
    for a in t.space_axes:
        ref = _trace(pkg, t.id, a.id, letter_of)
        if ref is None or ref[0] is None:
            return None, tuple(a.id for a in t.space_axes)
        traced[ref[0]] = (a, ref)
    if sorted(traced) != sorted(letters):
        return None, tuple(a.id for a in t.space_axes)
    ratio, crop, halo, ids = [], [], [], []
    for letter in letters:
        a, (_, r, offset) = traced[letter]
        ratio.append(Fraction(r))
        crop.append(Fraction(-offset, 2))
        halo.append(a.halo)
        ids.append(a.id)
    return OutputGeometry(tuple(ratio), tuple(crop), tuple(halo)), tuple(ids)


def check_image(arr: np.ndarray, tensor, geo: Geometry, where) -> None:
    want = f"{tensor.axes_string} ({'/'.join(geo.letters)} spatial)"
    if arr.ndim != geo.ndim + 1:
        got = "3D (z, y, x)" if arr.ndim == 4 else "2D (y, x)" if arr.ndim == 3 else f"{arr.ndim - 1}D"
        raise UserError(
            f"the model takes {geo.ndim}D images (axes {want}) but the image is {got}",
            path=where,
            hint="pass --axes if the axes were read wrongly" if arr.ndim in (3, 4) else None,
        )
    n = tensor.n_channels
    if n is not None and arr.shape[0] != n:
        more = "more" if arr.shape[0] > n else "fewer"
        raise UserError(
            f"the image has {arr.shape[0]} channels, {more} than the {n} input {tensor.id!r} takes "
            f"(axes {tensor.axes_string})",
            path=where,
            hint="convert the image or pass --axes if a channel axis was misread",
        )
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise UserError("the image contains NaN or infinite values", path=where)


def check_secondary_rules(pkg: Package, geo: Geometry, plan: TilePlan) -> None:
    for t in pkg.inputs[1:]:
        layout = geo.inputs[t.id]
        for a, size in zip(layout.space_ids, plan.tile_shape, strict=True):
            rule = t.axis(a).rule
            if rule.kind != "reference" and not rule.is_valid(size):
                raise UserError(
                    f"tile size {size} is not valid for input {t.id}.{a} ({rule.describe()})",
                    path=pkg.source,
                    hint="pass a --tile valid for every input",
                )


def check_inputs(pkg: Package, geo: Geometry, inputs, where) -> dict[str, np.ndarray]:
    """The image(s) of one prediction checked against the model: ``{input id: (C, *spatial)}``."""
    if not isinstance(inputs, dict):
        inputs = {next(iter(geo.inputs)): inputs}
    missing = [t.id for t in pkg.inputs if t.id not in inputs and not t.optional]
    unknown = [k for k in inputs if k not in geo.inputs]
    if missing or unknown:
        raise UserError(
            f"the model takes inputs {', '.join(geo.inputs)}; got {', '.join(inputs) or 'none'}",
            path=where,
            hint="pass one image per input with --input NAME=PATH",
        )
    shapes = set()
    for name, arr in inputs.items():
        arr = gray_if_lossless(np.asarray(arr), pkg.input(name).n_channels)
        check_image(arr, pkg.input(name), geo, where)
        shapes.add(tuple(arr.shape[1:]))
        inputs[name] = arr
    if len(shapes) > 1:
        raise UserError(
            f"the model's inputs must have the same spatial shape, got {sorted(shapes)}", path=where
        )
    return inputs

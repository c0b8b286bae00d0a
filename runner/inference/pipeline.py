"""The prediction pipeline: whole-image pre-processing, tiled batched inference, stitching, post-processing.

>>> from runner.inference import Predictor, predict_array
>>> out = predict_array("model.zip", image)                 # image: (C, (Z,) Y, X) float32
>>> out["probability"].shape                                # (C_out, (Z,) Y, X)
>>> with Predictor("model.zip", device="cpu") as p:         # reuse the loaded network for many images
...     outs = [p.predict(im) for im in images]

An image that fits the memory budget (``memory_mb``; by default half the available memory on CPU (2 to 16
GiB), half the free memory on a GPU, counted as :data:`BYTES_PER_VOXEL` per voxel) runs as one pass, padded
only as far as the model's size rule needs; larger ones (or ``tile``, the largest tile per axis) run as tiles
with a margin of context: ``halo`` when given, else the rdf's halo, else the measured receptive field (see
:mod:`runner.inference.planning` for the rules, the border policy and the plain-words report in
:attr:`Predictor.last_run`). Tiles are batched up to the same budget. ``tile="whole"`` runs the image as it
is in one pass, without padding or cropping (the image must then have a valid input shape).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from runner.errors import UserError
from runner.inference.adapters import Adapter, create_adapter
from runner.inference.devices import resolve_device, tiles_on_gpu
from runner.inference.geometry import Geometry, build_geometry, check_inputs, check_secondary_rules
from runner.inference.globalops import global_ops_in
from runner.inference.halo import receptive_field
from runner.inference.options import InferenceOptions, with_overrides
from runner.inference.package import Package, load_package
from runner.inference.planning import (
    BYTES_PER_VOXEL,
    CAPPED_NOTE,
    GLOBAL_OPS_EXAMPLES,
    GLOBAL_OPS_NOTE,
    MAX_BATCH,
    Context,
    RunInfo,
    border_extension,
    budget_mb,
    ceil_to,
    mirror_axes,
    per_axis,
    region_plan,
    why_tiles,
)
from runner.inference.processing import Processing
from runner.inference.tiling import TilePlan, choose_tile, pad_image, plan_tiles, run_tiled

TileSpec = Sequence[int] | str | None


class Predictor:
    """A loaded package ready to predict images (see the module docstring).

    Parameters
    ----------
    package : a :class:`Package` or a path for :func:`load_package`.
    options : the run's settings (:class:`runner.inference.options.InferenceOptions`: device, weights,
        trust_code, tile, batch_size, memory_mb, halo, border, threads, tta).
    **overrides : any of those fields by name, applied on top of ``options``.
    """

    def __init__(
        self, package: Package | str | Path, options: InferenceOptions | None = None, **overrides: Any
    ):
        self.options = with_overrides(options, overrides)
        opts = self.options
        self.package = package if isinstance(package, Package) else load_package(package)
        self.device = resolve_device(opts.device)
        self.geometry: Geometry = build_geometry(self.package)
        self.processing = Processing.from_description(
            self.package.descr, trust_code=opts.trust_code, where=self.package.source
        )
        self.adapter: Adapter = create_adapter(
            self.package,
            device=self.device,
            weights=opts.weights,
            trust_code=opts.trust_code,
            threads=opts.threads,
        )
        self.tile: TileSpec = opts.tile
        self.batch_size, self.memory_mb = opts.batch_size, opts.memory_mb
        self.halo = per_axis(opts.halo, self.geometry.ndim, name="halo")
        self._context: Context | None = None
        self.notes: list[str] = []
        """Things the user should hear once (e.g. that the network has global operations)."""
        self._nonspace: dict[str, tuple[int, ...]] = {}
        self.last_run: RunInfo | None = None
        self._weight_format = self.adapter.weight_format

    def __enter__(self) -> Predictor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Release the network (and the device memory it holds)."""
        self.adapter = None  # type: ignore[assignment]

    @property
    def weight_format(self) -> str:
        """The weight format in use (``onnx``, ``torchscript`` or ``pytorch_state_dict``)."""
        return self._weight_format

    # ---------------------------------------------------------------------------------------------- inputs

    def _check_inputs(self, inputs, where) -> dict[str, np.ndarray]:
        return check_inputs(self.package, self.geometry, inputs, where)

    def _preprocess(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        model_arrays, axes = {}, {}
        for name, arr in inputs.items():
            layout = self.geometry.inputs[name]
            ns = layout.input_nonspace_sizes(arr.shape[0])
            model_arrays[name] = layout.to_model(arr[None], ns)
            axes[name] = layout.tensor.axis_ids
        pre = self.processing.preprocess(model_arrays, axes)
        out = {}
        for name in (k for k in self.geometry.inputs if k in pre):  # the model's input order
            arr = pre[name]
            canon, _ = self.geometry.inputs[name].to_canonical(arr)
            dtype = np.float32 if arr.dtype.kind == "f" else arr.dtype
            out[name] = np.ascontiguousarray(canon[0], dtype=dtype)
        return out

    # --------------------------------------------------------------------------------------------- forward

    def canonical_forward(self, batches: list) -> list:
        """Run the network on canonical batches ``(B, C, *tile)`` (one per input); canonical outputs."""
        geo = self.geometry
        model_in = []
        for name, x in zip(geo.inputs, batches, strict=False):
            layout = geo.inputs[name]
            model_in.append(layout.to_model(x, layout.input_nonspace_sizes(x.shape[1])))
        outs = self.adapter(*model_in)
        result = []
        for name, y in zip(geo.outputs, outs, strict=False):
            canon, sizes = geo.outputs[name].to_canonical(y)
            self._nonspace[name] = sizes
            result.append(canon)
        return result

    def margin(self) -> tuple[int, ...]:
        """Context pixels per side and axis: ``halo``, else the rdf's, else the measured receptive field."""
        return self.context().margin

    def context(self) -> Context:
        """The margin between tiles, its source, and whether the network has global operations (measured
        once, when the rdf declares no halo)."""
        if self._context is None:
            declared = self.geometry.declared_margin
            if self.halo is not None:
                self._context = Context(self.halo, "--halo")
            elif declared is not None:
                self._context = Context(declared, "package halo")
            else:
                self._context = self._measured_context()
                if self._context.global_ops:
                    names = global_ops_in(self.adapter.network)
                    cause = f"it has {' and '.join(names)}" if names else GLOBAL_OPS_EXAMPLES
                    self.notes.append(GLOBAL_OPS_NOTE.format(cause=cause))
        return self._context

    def _measured_context(self) -> Context:
        geo = self.geometry
        channels = [t.n_channels or 1 for t in self.package.inputs]
        ratios = [g.ratio if g is not None else (1,) * geo.ndim for g in geo.output_geometry.values()]
        rf = receptive_field(
            self.canonical_forward,
            channels=channels,
            rules=geo.rules,
            ratios=ratios,
            max_voxels=self._budget_voxels(),
        )
        radius = tuple(
            ceil_to(r, q) if q <= 32 else r for r, q in zip(rf.radius, geo.granularity, strict=True)
        )
        if rf.capped:
            self.notes.append(CAPPED_NOTE.format(probe="x".join(map(str, rf.probe))))
        source = "capped: the network has global operations" if rf.global_ops else "measured"
        source = "measured, capped at a quarter of the probe" if rf.capped else source
        return Context(radius, source, rf.global_ops)

    # --------------------------------------------------------------------------------------------- predict

    def plan(self, spatial_shape: Sequence[int], *, tile: TileSpec = None) -> tuple[TilePlan, int]:
        """The tile plan (one tile when the image fits one pass) and batch size for ``spatial_shape``."""
        geo = self.geometry
        ctx = self.context()
        tile = self.tile if tile is None else tile
        budget = self._budget_voxels()
        extend = border_extension(geo, ctx, self.options.border)
        max_tile: Sequence[int] | None
        if tile is None:
            max_tile = choose_tile(
                spatial_shape,
                geo.rules,
                ctx.margin,
                budget,
                geo.granularity,
                extend=extend,
                align=geo.ratio_align,
                fewest_tiles=ctx.global_ops,
            )
        else:
            max_tile = per_axis(tile, geo.ndim, name="tile")
        plan = plan_tiles(
            shape=spatial_shape,
            rules=geo.rules,
            margins=ctx.margin,
            max_tile=max_tile,
            granularity=geo.granularity,
            extend=extend,
            align=geo.ratio_align,
        )
        check_secondary_rules(self.package, geo, plan)
        if geo.batch_fixed:
            batch = 1
        elif self.batch_size:
            batch = int(self.batch_size)
        else:
            batch = int(np.clip(budget // max(math.prod(plan.tile_shape), 1), 1, MAX_BATCH))
        return plan, max(1, min(batch, plan.n_tiles))

    def _run_info(self, plan: TilePlan, batch: int, *, user_tile: bool) -> RunInfo:
        geo, ctx = self.geometry, self.context()
        extend = border_extension(geo, ctx, self.options.border)
        why = why_tiles(plan, geo, user_tile=user_tile, extension=extend, memory_mb=self._budget_mb())
        return RunInfo(
            plan.tile_shape,
            plan.n_tiles,
            batch,
            ctx.margin,
            mode="one pass" if plan.n_tiles == 1 else "tiles",
            border=self.options.border,
            halo_source=ctx.source,
            why=why,
            global_ops=ctx.global_ops,
        )

    def _budget_voxels(self) -> int:
        return max(int(self._budget_mb() * 2**20 / BYTES_PER_VOXEL), 1)

    def _budget_mb(self) -> float:
        return budget_mb(self.memory_mb, self.device)

    def predict(
        self,
        inputs: np.ndarray | dict[str, np.ndarray],
        *,
        tile: TileSpec = None,
        postprocess: bool = True,
        tta: bool | None = None,
        progress: Callable[[int, int], None] | None = None,
        where: str | Path | None = None,
        region: tuple[Sequence[int], Sequence[int]] | None = None,
    ) -> dict[str, np.ndarray]:
        """Predict one image (or one image per input).

        Parameters
        ----------
        inputs : ``(C, (Z,) Y, X)`` array, or a dict of them keyed by input id.
        tile : overrides the predictor's tile setting for this call.
        postprocess : apply the rdf's output post-processing (sigmoid, ...).
        tta : test-time augmentation: average the network's outputs over all mirror images of the input
            (4 in 2D, 8 in 3D), each flipped back, before the rdf's output post-processing (default: the
            options' ``tta``, else the package's ``config.runner.test_time_augmentation``).
        progress : called as ``progress(done, total)`` with tile counts.
        where : file name used in error messages.
        region : ``(origin, full_shape)``: the image is the part of a larger image (spatial shape
            ``full_shape``) that starts at ``origin``; it is padded as the larger image's pass would be at
            that image's borders and aligned to its pooling grid inside, so its outputs equal the larger
            image's wherever it has a margin of real context (blocks of a distributed run).

        Returns
        -------
        dict
            Output id -> ``(C_out, (Z,) Y, X)`` array in the engine layout.
        """
        if self.adapter is None:
            raise RuntimeError("the predictor was closed")
        inputs = self._check_inputs(dict(inputs) if isinstance(inputs, dict) else inputs, where)
        pre = self._preprocess(inputs)
        tile = self.tile if tile is None else tile
        if isinstance(tile, str) and tile != "whole":
            raise UserError(f"tile must be sizes or 'whole', got {tile!r}")
        if tta is None:
            tta = self.options.tta if self.options.tta is not None else self.package.test_time_augmentation
        flips = mirror_axes(self.geometry.ndim) if tta else [()]
        if tta and not self.geometry.tileable:
            raise UserError(
                "test-time augmentation needs outputs that follow the input size",
                path=self.package.source,
                hint="drop --tta",
            )
        total: dict[str, np.ndarray] = {}
        for axes in flips:
            # spatial axes of a (C, *spatial) array start at 1
            flipped = {k: np.flip(x, tuple(a + 1 for a in axes)) for k, x in pre.items()} if axes else pre
            if tile == "whole":
                canon = self._predict_whole(flipped, where)
            else:
                canon = self._predict_tiled(flipped, tile=tile, progress=progress, region=region)
            for name, arr in canon.items():
                arr = np.flip(arr, tuple(a + 1 for a in axes)) if axes else arr
                total[name] = total[name] + arr if name in total else arr.astype(np.float32, copy=True)
        if len(flips) > 1:
            total = {k: v / len(flips) for k, v in total.items()}
        return self._finish(total, postprocess=postprocess)

    def _predict_whole(self, pre: dict[str, np.ndarray], where) -> dict[str, np.ndarray]:
        geo = self.geometry
        shape = next(iter(pre.values())).shape[1:]
        bad = [
            f"{ax}={n} (rule {r.describe()})"
            for ax, n, r in zip(geo.letters, shape, geo.rules, strict=True)
            if not r.is_valid(n)
        ]
        if bad:
            raise UserError(
                f"whole-image prediction needs a valid input shape; {', '.join(bad)}",
                path=where,
                hint="let runner tile the image (omit --tile whole)",
            )
        outs = self.canonical_forward([x[None] for x in pre.values()])
        self.last_run = RunInfo(
            tuple(shape), 1, 1, (0,) * geo.ndim, mode="whole", border="image", why="--tile whole"
        )
        return {name: np.asarray(o[0]) for name, o in zip(geo.outputs, outs, strict=False)}

    def _predict_tiled(
        self, pre: dict[str, np.ndarray], *, tile, progress, region=None
    ) -> dict[str, np.ndarray]:
        geo = self.geometry
        shape = next(iter(pre.values())).shape[1:]
        if (
            not geo.tileable
            and tile is None
            and all(r.is_valid(n) for r, n in zip(geo.rules, shape, strict=True))
        ):
            return self._predict_whole(pre, self.package.source)  # outputs of a fixed size: one pass as it is
        if not geo.tileable:
            raise UserError(
                "an output of this model does not follow the input size; it cannot be tiled",
                path=self.package.source,
                hint="use --tile whole with images of a valid size",
            )
        shape = next(iter(pre.values())).shape[1:]
        plan, batch = self.plan(shape, tile=tile)
        if region is not None and tile is None:
            sub = region_plan(shape, *region, whole=self.plan(tuple(region[1]))[0], geo=geo)
            plan, batch = (sub, 1) if sub is not None else (plan, batch)
        padded = [pad_image(x, plan, mode=geo.inputs[k].tensor.pad_mode) for k, x in pre.items()]
        done = [0]
        if progress is not None:
            progress(0, plan.n_tiles)

        def on_batch(n: int) -> None:
            done[0] += n
            if progress is not None:
                progress(done[0], plan.n_tiles)

        forward, stack = self.canonical_forward, np.stack
        if self.adapter.is_torch and self.device.is_cuda:
            padded, stack, forward = tiles_on_gpu(padded, self.device, self.canonical_forward)
        outs = run_tiled(
            padded,
            forward=forward,
            plan=plan,
            outputs=[g for g in geo.output_geometry.values() if g is not None],  # all of them: tileable
            batch_size=batch,
            on_batch=on_batch,
            stack=stack,
        )
        self.last_run = self._run_info(plan, batch, user_tile=tile is not None)
        return dict(zip(geo.outputs, outs, strict=False))

    def _finish(self, canon: dict[str, np.ndarray], *, postprocess: bool) -> dict[str, np.ndarray]:
        geo = self.geometry
        model_arrays, axes = {}, {}
        for name, arr in canon.items():
            layout = geo.outputs[name]
            model_arrays[name] = layout.to_model(arr[None], self._nonspace[name])
            axes[name] = layout.tensor.axis_ids
        if postprocess:
            model_arrays = self.processing.postprocess(model_arrays, axes)
        return {
            name: np.ascontiguousarray(geo.outputs[name].to_canonical(arr)[0][0])
            for name, arr in model_arrays.items()
        }


def predict_array(
    package: Package | str | Path,
    image: np.ndarray | dict[str, np.ndarray],
    options: InferenceOptions | None = None,
    *,
    postprocess: bool = True,
    **overrides: Any,
) -> dict[str, np.ndarray]:
    """Predict one image with a package: ``(C, (Z,) Y, X)`` in, ``{output_id: (C_out, (Z,) Y, X)}`` out.

    The rdf's pre/post-processing is applied (``postprocess=False`` skips the output ops); ``options`` and
    ``overrides`` are those of :class:`Predictor`. ``tile="whole"`` reproduces what ``bioimageio test``
    computes for a test input (one pass, no padding, no cropping). To predict many images create a
    :class:`Predictor` once instead.
    """
    with Predictor(package, options, **overrides) as predictor:
        return predictor.predict(image, postprocess=postprocess)


# ------------------------------------------------------------------------------------------------- helpers

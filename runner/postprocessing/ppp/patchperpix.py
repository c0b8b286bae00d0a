"""PatchPerPix instance assembly (registered as ``patchperpix``): dense shape patches -> instances, one pass.

Input: a PPP prediction ``(C, (Z,) Y, X)`` laid out like the ``PPP`` targets (:mod:`runner.targets.ppp`):
channel 0 foreground, then one patch channel per offset of the window in raster order, then (optionally) the
overlap class. Steps (PatchPerPix, Sec. 2.1 and 2.3):

1. image foreground ``F`` = foreground > ``fg_threshold``; patch centres = ``F`` minus predicted overlap;
   every patch is restricted to ``F`` (``patch_sparse``);
2. consensus affinities of all pixel pairs in patch range (Eq. 3-4) and a score per patch (Eq. 5)
   (:mod:`~runner.postprocessing.ppp.consensus`);
3. greedy cover of the foreground by decreasing score, then thin-out
   (:mod:`~runner.postprocessing.ppp.select`);
4. patch-pair affinities (Eq. 6) between selected patches, partition by connected components of the positive
   subgraph or by the mutex watershed, then instances as a label image (each pixel takes the id of its most
   probable patch) or an overlapping stack (:mod:`~runner.postprocessing.ppp.graph`).

Cost: no dense consensus array. Memory is about ``2 D`` bytes per foreground pixel for the consensus
affinities (``D = (prod(2p - 1) + 1) / 2``: 2.4 kB for 25x25, 4.9 kB for 9x9x9) plus ``4 K`` bytes per patch
centre for the gathered patches; time grows with ``sum over patches of |patch ∩ F| * K`` (numba, all cores).
See ``benchmarks/bench_patchperpix.py``.

>>> from runner.postprocessing import run_postprocessor
>>> labels = run_postprocessor("patchperpix", prediction, {"patch": (25, 25), "partition": "mws"})
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from pydantic import Field, field_validator

from runner.errors import UserError
from runner.postprocessing.registry import UNIT_GRID, Params, register


class PatchPerPixParams(Params):
    """Params of the PatchPerPix assembly."""

    patch: tuple[int, ...] | None = Field(
        default=None,
        description="Patch window (z,)y,x, odd sizes, e.g. 25,25 or 9,9,9; None infers a square/cube "
        "window from the channel count.",
    )
    threshold: float = Field(
        default=0.5,
        ge=0.5,
        lt=1.0,
        description="Patch threshold t (Eq. 1): p > t is patch foreground, p < 1 - t patch background.",
    )
    fg_threshold: float = Field(
        default=0.5, ge=0.0, lt=1.0, description="Foreground channel threshold for the image foreground."
    )
    overlap_threshold: float = Field(
        default=0.5,
        ge=0.0,
        le=1.0,
        description="Overlap channel threshold: pixels above it are not used as patch centres.",
    )

    tuning_grid = {"threshold": (0.5, 0.6, 0.7, 0.8, 0.9), "fg_threshold": UNIT_GRID}
    overlap_channel: bool | None = Field(
        default=None,
        description="Whether the last channel is the overlap class; None decides from the channel count.",
    )
    partition: Literal["cc", "mws"] = Field(
        default="cc",
        description="Patch graph partition: connected components of "
        "the positive subgraph (cc) or mutex watershed (mws).",
    )
    merge_threshold: float = Field(
        default=0.0,
        ge=-1.0,
        le=1.0,
        description="Patch pairs with affinity above it attract, below it repel (0 = the sign of Eq. 6).",
    )
    output: Literal["labels", "stack"] = Field(
        default="labels",
        description="labels: one id per pixel (most probable "
        "patch); stack: overlapping stack, one instance per plane.",
    )
    min_size: int = Field(default=0, ge=0, description="Drop instances with fewer pixels.")
    thin_out: bool = Field(
        default=True, description="Thin out the greedy pre-selection of patches (Sec. 2.1)."
    )

    @field_validator("patch")
    @classmethod
    def _odd(cls, v):
        if v is not None and (len(v) not in (2, 3) or any(p < 1 or p % 2 == 0 for p in v)):
            raise ValueError("must be 2 or 3 odd positive sizes, e.g. 25,25 or 9,9,9")
        return v


@dataclass
class Assembly:
    """Result of :func:`assemble` with the intermediate counts.

    Attributes
    ----------
    instances : ndarray of uint32
        ``(Z,) Y, X`` labels or ``(N, (Z,) Y, X)`` stack.
    foreground : ndarray of bool
        ``(Z,) Y, X`` image foreground used.
    n_patches, n_selected, n_edges : int
        Patch centres, selected patches, patch-graph edges.
    centres : (S, ndim) ndarray of int64
        Pixel coordinates of the selected patch centres.
    components : (S,) ndarray of int64
        Instance index (0-based, before size filtering) of each selected patch.
    """

    instances: np.ndarray
    foreground: np.ndarray
    n_patches: int
    n_selected: int
    n_edges: int
    centres: np.ndarray = field(repr=False)
    components: np.ndarray = field(repr=False)


def resolve_layout(
    n_channels: int, spatial_ndim: int, params: PatchPerPixParams
) -> tuple[tuple[int, ...], bool]:
    """Patch window and overlap flag for a prediction of ``n_channels`` channels; UserError if they clash."""
    patch = params.patch
    if patch is None:
        for overlap in (True, False):
            k = n_channels - 1 - int(overlap)
            side = round(k ** (1 / spatial_ndim)) if k > 0 else 0
            if side % 2 == 1 and side**spatial_ndim == k and params.overlap_channel in (None, overlap):
                return (side,) * spatial_ndim, overlap
        raise UserError(
            f"patchperpix: cannot infer a square/cube patch from {n_channels} channels of a {spatial_ndim}D "
            "prediction",
            hint="give --param patch=25,25 (or 9,9,9)",
        )
    if len(patch) != spatial_ndim:
        raise UserError(
            f"patchperpix: patch {tuple(patch)} is {len(patch)}D but the prediction is {spatial_ndim}D",
            hint=f"give {spatial_ndim} sizes",
        )
    k = int(np.prod(patch))
    allowed = {True: k + 2, False: k + 1}
    if params.overlap_channel is not None:
        allowed = {params.overlap_channel: allowed[params.overlap_channel]}
    for overlap, count in allowed.items():
        if count == n_channels:
            return tuple(patch), overlap
    want = " or ".join(str(c) for c in sorted(allowed.values()))
    raise UserError(
        f"patchperpix with patch {tuple(patch)} needs {want} channels (foreground, {k} patch offsets"
        f"{' [, overlap]' if len(allowed) == 2 else (', overlap' if True in allowed else '')}), but the "
        f"prediction has {n_channels}",
        hint="check --param patch= against the model's PPP target layout",
    )


def assemble(prediction: np.ndarray, params: PatchPerPixParams | dict | None = None) -> Assembly:
    """Run the PatchPerPix assembly on one prediction.

    Parameters
    ----------
    prediction : (C, Y, X) or (C, Z, Y, X) ndarray of float
        Foreground, ``K`` patch channels (raster offset order) and optionally the overlap channel, as
        probabilities in ``[0, 1]``.
    params : PatchPerPixParams or dict, optional

    Returns
    -------
    Assembly
    """
    from runner.postprocessing.ppp import consensus as cons
    from runner.postprocessing.ppp import graph as graph
    from runner.postprocessing.ppp import select as select

    if not isinstance(params, PatchPerPixParams):
        params = PatchPerPixParams.model_validate(dict(params or {}))
    prediction = np.asarray(prediction, np.float32)
    if prediction.ndim not in (3, 4):
        raise UserError(f"patchperpix needs a (C,(Z,)Y,X) prediction, got shape {prediction.shape}")
    ndim = prediction.ndim - 1
    patch, has_overlap = resolve_layout(prediction.shape[0], ndim, params)
    k = int(np.prod(patch))
    pred3 = cons.as_3d(prediction, ndim)
    fmask = pred3[0] > params.fg_threshold
    overlap = fmask & (pred3[-1] > params.overlap_threshold) if has_overlap else None
    pz, py, px = (1, *patch) if ndim == 2 else tuple(patch)
    ps = cons.prepare(pred3[1 : 1 + k], fmask, overlap, params.threshold, (pz, py, px))
    aff, score = cons.consensus_and_scores(ps)
    chosen = select.select_patches(ps, score, thin_out=params.thin_out)
    pg = graph.patch_graph(ps, aff, chosen)
    del aff
    comp = graph.partition(pg, params.partition, threshold=params.merge_threshold)
    out = graph.render(ps, chosen, comp, params.output)
    out = _filter_sizes(out, params.min_size, stack=params.output == "stack")
    if ndim == 2:
        out = out[..., 0, :, :]
    coords = np.stack(np.unravel_index(ps.cpos[chosen], ps.shape), axis=1)[:, -ndim:]
    return Assembly(
        out,
        fmask.reshape(prediction.shape[1:]),
        len(ps.cpos),
        len(chosen),
        len(pg.uv),
        coords.astype(np.int64),
        comp,
    )


def _filter_sizes(out: np.ndarray, min_size: int, *, stack: bool) -> np.ndarray:
    """Drop instances smaller than ``min_size`` and number the rest ``1..n`` (plane order for stacks)."""
    if stack:
        sizes = np.count_nonzero(out.reshape(len(out), -1), axis=1) if len(out) else np.zeros(0, int)
        keep = np.flatnonzero(sizes >= max(min_size, 1))
        kept = out[keep]
        for i in range(len(kept)):
            kept[i][kept[i] > 0] = i + 1
        return kept
    from runner.labelops import relabel_sequential

    if min_size > 0 and out.max() > 0:
        sizes = np.bincount(out.ravel())
        small = sizes < min_size
        small[0] = False
        out = np.where(small[out], 0, out).astype(np.uint32)
    return relabel_sequential(out)[0]


def _check(prediction: np.ndarray, params: PatchPerPixParams) -> None:
    resolve_layout(prediction.shape[0], prediction.ndim - 1, params)
    lo, hi = float(prediction.min()), float(prediction.max())
    if lo < -1e-3 or hi > 1 + 1e-3:
        raise UserError(
            f"patchperpix needs probabilities in [0, 1], got values in [{lo:.3g}, {hi:.3g}]",
            hint="apply the sigmoid to the model output first (the PPP package does)",
        )


@register("patchperpix", params=PatchPerPixParams, overlapping=True, check=_check)
def patchperpix(
    prediction: np.ndarray, params: PatchPerPixParams, *, resolution=None, debug=None
) -> np.ndarray:
    """PatchPerPix: consensus of shape patches, patch cover, patch graph partition (2D/3D, overlaps)."""
    result = assemble(prediction, params)
    if debug is not None:
        debug["foreground"] = result.foreground
        seeds = np.zeros(result.foreground.shape, np.uint32)
        if len(result.centres):
            seeds[tuple(result.centres.T)] = result.components + 1
        debug["seeds"] = seeds
    return result.instances

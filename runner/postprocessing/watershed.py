"""Marker-controlled watershed for every BiaPy-style channel code (BC, BCM, BCD, BCDv2, BP, Dv2, BDv2).

One variant per code turns the channels into three maps:

- **seeds**: the pixels sure to be inside one object — binary interior above its threshold, distance above its
  threshold, contour below its threshold (whichever channels the code has) — labelled by connected components;
  seeds smaller than ``min_seed_size`` pixels are dropped;
- **foreground**: where objects may grow. It covers the whole object including its contour band (``B + C``,
  ``M``, or ``Dv2`` above a slightly negative threshold), so grown objects keep their border pixels;
- **surface**: the heights flooded from the seeds, low first. ``map`` is the code's own channel (``-D``,
  ``-Dv2``); ``seed_distance`` is the distance to the nearest seed, which splits a gap between two seeds
  halfway (right for BC/BCM/BP, whose seeds are the whole interior).

Objects smaller than ``min_size`` pixels are removed at the end and ids renumbered ``1..n``. With ``expand >
0`` objects grow that far into the background afterwards (BP needs it: neither B nor P covers the contour
band).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Literal

import numpy as np
from pydantic import AfterValidator, Field

from runner.errors import UserError
from runner.postprocessing import ops
from runner.postprocessing.params import (
    DistanceThreshold,
    Range,
    SignedThreshold,
    Threshold,
    resolve_threshold,
)
from runner.postprocessing.registry import UNIT_GRID, Params, register

CODES = ("BC", "BCM", "BCD", "BCDv2", "BP", "Dv2", "BDv2")


SIGNED_FOREGROUND_GRID = (-0.2, -0.1, -0.05, -0.02, 0.0, 0.05)
"""``runner tune`` values of a Dv2 foreground threshold (0 on the contour, negative outside)."""


class WatershedParams(Params):
    """Params shared by every code."""

    min_seed_size: int = Field(
        default=5, ge=0, le=10**9, description="Drop seeds with fewer pixels/voxels than this."
    )
    min_size: int = Field(
        default=10, ge=0, le=10**9, description="Drop final objects with fewer pixels/voxels than this."
    )
    smooth: float = Field(
        default=0.0,
        ge=0,
        le=50,
        description="Gaussian sigma (resolution units) applied to every "
        "channel before thresholding; 0 = off.",
    )
    surface: Literal["auto", "map", "seed_distance"] = Field(
        default="auto",
        description="Flooded heights: map = the code's distance channel (-D/-Dv2), seed_distance = "
        "distance to the seeds; auto = map when the code has D or Dv2, else seed_distance.",
    )
    expand: float = Field(
        default=0.0,
        ge=0,
        le=100,
        description="Grow objects this far (resolution units) into the "
        "background after the watershed; 0 = off.",
    )


class BCParams(WatershedParams):
    th_binary: Threshold = Field(default=0.5, description="Seeds: interior probability (B) above this.")
    th_contour: Threshold = Field(default=0.3, description="Seeds: contour probability (C) below this.")
    th_foreground: Threshold = Field(default=0.5, description="Foreground: B + C above this.")

    tuning_grid = {"th_contour": UNIT_GRID, "th_binary": UNIT_GRID, "th_foreground": UNIT_GRID}


class BCMParams(WatershedParams):
    th_binary: Threshold = Field(default=0.5, description="Seeds: interior probability (B) above this.")
    th_contour: Threshold = Field(default=0.3, description="Seeds: contour probability (C) below this.")
    th_foreground: Threshold = Field(default=0.5, description="Foreground: mask probability (M) above this.")

    tuning_grid = {"th_contour": UNIT_GRID, "th_binary": UNIT_GRID, "th_foreground": UNIT_GRID}


class BCDParams(WatershedParams):
    th_binary: Threshold = Field(default=0.5, description="Seeds: interior probability (B) above this.")
    th_contour: Threshold = Field(default=0.3, description="Seeds: contour probability (C) below this.")
    th_distance: DistanceThreshold = Field(
        default=0.5, description="Seeds: distance (D, per-object 0..1) above this."
    )
    th_foreground: Threshold = Field(default=0.5, description="Foreground: B + C above this.")
    th_dist_foreground: DistanceThreshold = Field(
        default=0.0, description="Foreground: D above this as well (0 = off)."
    )

    tuning_grid = {
        "th_distance": UNIT_GRID,
        "th_contour": UNIT_GRID,
        "th_binary": UNIT_GRID,
        "th_foreground": UNIT_GRID,
    }


class BCDv2Params(WatershedParams):
    th_binary: Threshold = Field(default=0.5, description="Seeds: interior probability (B) above this.")
    th_contour: Threshold = Field(default=0.3, description="Seeds: contour probability (C) below this.")
    th_distance: SignedThreshold = Field(default=0.5, description="Seeds: signed distance (Dv2) above this.")
    th_foreground: Threshold = Field(default=0.5, description="Foreground: B + C above this.")

    tuning_grid = {
        "th_distance": (0.0, *UNIT_GRID),
        "th_contour": UNIT_GRID,
        "th_binary": UNIT_GRID,
        "th_foreground": UNIT_GRID,
    }


class BPParams(WatershedParams):
    th_point: Threshold = Field(default=0.5, description="Seeds: centre probability (P) above this.")
    th_foreground: Threshold = Field(
        default=0.5, description="Foreground: interior probability (B) above this."
    )
    expand: float = Field(
        default=1.0,
        ge=0,
        le=100,
        description="Grow objects this far (resolution units) into the "
        "background afterwards, to restore the contour band B lacks; 0 = off.",
    )

    tuning_grid = {"th_point": UNIT_GRID, "th_foreground": UNIT_GRID}


class Dv2Params(WatershedParams):
    th_distance: SignedThreshold = Field(default=0.5, description="Seeds: signed distance (Dv2) above this.")
    th_foreground: SignedThreshold = Field(
        default=-0.02, description="Foreground: Dv2 above this (0 on the contour, negative outside)."
    )

    tuning_grid = {"th_distance": (0.0, *UNIT_GRID), "th_foreground": SIGNED_FOREGROUND_GRID}


class BDv2Params(WatershedParams):
    th_binary: Threshold = Field(default=0.5, description="Seeds: interior probability (B) above this.")
    th_distance: SignedThreshold = Field(default=0.5, description="Seeds: signed distance (Dv2) above this.")
    th_foreground: SignedThreshold = Field(default=-0.02, description="Foreground: Dv2 above this.")

    tuning_grid = {
        "th_distance": (0.0, *UNIT_GRID),
        "th_binary": UNIT_GRID,
        "th_foreground": SIGNED_FOREGROUND_GRID,
    }


@dataclass
class Maps:
    """What a code's variant extracts from the channels."""

    seeds: np.ndarray
    """Boolean seed mask (before labelling)."""
    foreground: np.ndarray
    """Boolean mask bounding the growth."""
    height: np.ndarray | None
    """The code's own surface (low = object centre), or None when it has none."""
    interior: np.ndarray | None = None
    """Object interiors without the contour band (B above / C below threshold), or None (single stage)."""


def _above(ch: np.ndarray, th: float | str) -> np.ndarray:
    return ch > resolve_threshold(th, ch)


def _below(ch: np.ndarray, th: float | str) -> np.ndarray:
    return ch < resolve_threshold(th, ch)


def _interior(c: dict[str, np.ndarray], p) -> np.ndarray:
    return _above(c["B"], p.th_binary) & _below(c["C"], p.th_contour)


def _bc(c: dict[str, np.ndarray], p) -> Maps:
    inner = _interior(c, p)
    return Maps(inner, _above(c["B"] + c["C"], p.th_foreground), None, inner)


def _bcm(c: dict[str, np.ndarray], p) -> Maps:
    inner = _interior(c, p)
    return Maps(inner, _above(c["M"], p.th_foreground), None, inner)


def _bcd(c: dict[str, np.ndarray], p) -> Maps:
    inner = _interior(c, p)
    fg = _above(c["B"] + c["C"], p.th_foreground)
    if p.th_dist_foreground != 0:
        fg &= _above(c["D"], p.th_dist_foreground)
    return Maps(inner & _above(c["D"], p.th_distance), fg, -c["D"], inner)


def _bcdv2(c: dict[str, np.ndarray], p) -> Maps:
    inner = _interior(c, p)
    return Maps(
        inner & _above(c["Dv2"], p.th_distance), _above(c["B"] + c["C"], p.th_foreground), -c["Dv2"], inner
    )


def _bp(c: dict[str, np.ndarray], p) -> Maps:
    return Maps(_above(c["P"], p.th_point), _above(c["B"], p.th_foreground), None)


def _dv2(c: dict[str, np.ndarray], p) -> Maps:
    return Maps(_above(c["Dv2"], p.th_distance), _above(c["Dv2"], p.th_foreground), -c["Dv2"])


def _bdv2(c: dict[str, np.ndarray], p) -> Maps:
    inner = _above(c["B"], p.th_binary)
    return Maps(inner & _above(c["Dv2"], p.th_distance), _above(c["Dv2"], p.th_foreground), -c["Dv2"], inner)


@dataclass(frozen=True)
class WatershedVariant:
    code: str
    params: type[WatershedParams]
    maps: Callable[[dict[str, np.ndarray], WatershedParams], Maps]
    summary: str


VARIANTS: dict[str, WatershedVariant] = {
    r.code: r
    for r in (
        WatershedVariant(
            "BC", BCParams, _bc, "seeds B>th & C<th, foreground B+C, flooded by distance to the seeds"
        ),
        WatershedVariant(
            "BCM", BCMParams, _bcm, "seeds B>th & C<th, foreground M, flooded by distance to the seeds"
        ),
        WatershedVariant(
            "BCD", BCDParams, _bcd, "seeds B>th & C<th & D>th, foreground B+C (& D), flooded over -D"
        ),
        WatershedVariant(
            "BCDv2", BCDv2Params, _bcdv2, "seeds B>th & C<th & Dv2>th, foreground B+C, flooded over -Dv2"
        ),
        WatershedVariant("BP", BPParams, _bp, "seeds P>th, foreground B, then grown by the contour width"),
        WatershedVariant("Dv2", Dv2Params, _dv2, "seeds Dv2>th, foreground Dv2>th (~0), flooded over -Dv2"),
        WatershedVariant(
            "BDv2", BDv2Params, _bdv2, "seeds B>th & Dv2>th, foreground Dv2>th (~0), flooded over -Dv2"
        ),
    )
}


def marker_watershed(
    prediction: np.ndarray,
    code: str,
    params: WatershedParams,
    *,
    resolution: tuple[float, ...] | None = None,
    debug: dict | None = None,
) -> np.ndarray:
    """Seeds, foreground and surface for ``code`` from ``prediction``, then the seeded watershed.

    Parameters
    ----------
    prediction : (C, (Z,) Y, X) ndarray of float32
        The channels of ``code`` in order.
    code : str
        One of :data:`CODES`.
    params : WatershedParams
        The code's params model instance.
    resolution : tuple of float, optional
        ``(Z,) Y, X`` spacing for distances and smoothing.
    debug : dict, optional
        Receives ``seeds`` (uint32), ``foreground`` (bool) and ``surface`` (float32).

    Returns
    -------
    (Z,) Y, X ndarray of uint32
        Objects ``1..n``.
    """
    from runner.targets import split_code

    variant = VARIANTS[code]
    tokens = split_code(code)
    channels = {t: ops.smooth(prediction[i], params.smooth, resolution) for i, t in enumerate(tokens)}
    maps = variant.maps(channels, params)
    seeds = ops.remove_small(ops.label_mask(maps.seeds & maps.foreground), params.min_seed_size)
    kind = params.surface
    if kind == "auto":
        kind = "map" if maps.height is not None else "seed_distance"
    if kind == "map":
        if maps.height is None:
            raise UserError(
                f"surface='map' needs a distance channel, but code {code} has none",
                hint="use surface=seed_distance or auto",
            )
        surface = maps.height.astype(np.float32, copy=False)
    else:
        surface = ops.distance_to(seeds > 0, resolution)
        surface[~np.isfinite(surface)] = 0
    labels = _grow(surface, seeds, maps, resolution)
    if params.expand > 0:
        labels = ops.expand_labels(labels, params.expand, resolution=resolution)
    labels = ops.drop_small_and_relabel(labels, params.min_size)
    if debug is not None:
        debug.update(seeds=seeds, foreground=maps.foreground, surface=surface)
    return labels


def _grow(
    surface: np.ndarray, seeds: np.ndarray, maps: Maps, resolution: tuple[float, ...] | None
) -> np.ndarray:
    """Flood ``surface`` from the seeds; with an interior mask, in two stages.

    Stage 1 fills the interiors (growth bounded by the interior mask), stage 2 fills the contour band of the
    foreground by distance to the stage-1 objects, so a band shared by two objects is split halfway — exact
    for inner contours of equal width, and independent of the per-object normalisation of D. With isotropic
    spacing the distance is counted in face steps inside the foreground (one breadth-first pass), otherwise it
    is the Euclidean distance under ``resolution`` (an EDT and a watershed).
    """
    fg = maps.foreground | (seeds > 0)
    if maps.interior is None:
        return ops.watershed(surface, seeds, fg)
    inner = ops.watershed(surface, seeds, (maps.interior & fg) | (seeds > 0))
    band = fg & (inner == 0)
    if not band.any() or not inner.any():
        return inner
    if resolution is None or len(set(resolution)) == 1:
        return ops.grow_bfs(inner, fg)
    return ops.watershed(ops.distance_to(inner > 0, resolution), inner, fg)


def _make(code: str) -> None:
    variant = VARIANTS[code]

    def run(prediction, params, *, resolution=None, debug=None):
        return marker_watershed(prediction, code, params, resolution=resolution, debug=debug)

    run.__name__ = f"watershed_{code.lower()}"
    register(
        f"watershed_{code.lower()}",
        params=variant.params,
        code=code,
        description=f"Marker-controlled watershed for {code} outputs: {variant.summary}.",
    )(run)


for _code in CODES:
    _make(_code)


SignedOrDistance = Annotated[float | Literal["auto"], AfterValidator(Range(-1.0, None))]


class AnyCodeParams(WatershedParams):
    """Params of ``watershed``: the code plus any threshold of that code (unset = the code's default)."""

    code: Literal["BC", "BCM", "BCD", "BCDv2", "BP", "Dv2", "BDv2"] = Field(
        default="BCD", description="Target code of the prediction's channels, in order."
    )
    th_binary: Threshold | None = Field(default=None, description="Seeds: B above this (codes with B).")
    th_contour: Threshold | None = Field(default=None, description="Seeds: C below this (codes with C).")
    th_distance: SignedOrDistance | None = Field(
        default=None, description="Seeds: D or Dv2 above this (codes with D/Dv2)."
    )
    th_point: Threshold | None = Field(default=None, description="Seeds: P above this (BP).")
    th_foreground: SignedThreshold | None = Field(
        default=None, description="Foreground threshold (see the code's method)."
    )
    th_dist_foreground: DistanceThreshold | None = Field(
        default=None, description="Foreground: D above this (BCD)."
    )


def _check_any(prediction: np.ndarray, params: AnyCodeParams) -> None:
    from runner.targets import split_code

    need = len(split_code(params.code))
    if prediction.shape[0] != need:
        raise UserError(
            f"watershed with code={params.code} needs {need} channels, but the prediction has "
            f"{prediction.shape[0]} (shape {prediction.shape})",
            hint="set code= to the model's target code",
        )


@register("watershed", params=AnyCodeParams, check=_check_any)
def watershed_any(prediction, params: AnyCodeParams, *, resolution=None, debug=None):
    """Marker-controlled watershed for any channel code given as code=... (same as watershed_<code>)."""
    from runner.postprocessing.registry import validate_params

    variant = VARIANTS[params.code]
    given = {k: getattr(params, k) for k in params.model_fields_set if k != "code"}
    given = {k: v for k, v in given.items() if v is not None}
    wrong = sorted(set(given) - set(variant.params.model_fields))
    if wrong:
        raise UserError(
            f"param(s) {', '.join(wrong)} do not apply to code {params.code}",
            hint=f"its params: {', '.join(variant.params.model_fields)}",
        )
    inner = validate_params(variant.params, given, owner=f"watershed_{params.code.lower()}")
    return marker_watershed(prediction, params.code, inner, resolution=resolution, debug=debug)

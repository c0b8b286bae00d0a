"""The filter registry: label image -> label image steps composable after any post-processor.

A filter is ``f(labels, params, *, prediction=None, resolution=None, foreground=None) -> labels`` with a
pydantic params model. Steps are given as ``FilterStep`` objects, ``(name, params)`` pairs, ``{"name": ...,
"params": {...}}`` dicts or CLI strings ``"name:key=value,key=value"`` (see :func:`parse_filter`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import BaseModel

from runner.errors import UserError
from runner.postprocessing.registry import discover, validate_params

FilterFn = Callable[..., np.ndarray]


@dataclass(frozen=True)
class Filter:
    """One registered filter.

    Attributes
    ----------
    name : str
        Registry key, e.g. ``"remove_small"``.
    description : str
        One line for ``runner postprocess --list``.
    params_model : type[BaseModel]
        Pydantic params (``extra="forbid"``, defaults, ranges, field descriptions).
    func : callable
        ``func(labels, params, *, prediction=None, resolution=None, foreground=None) -> labels``; ``labels``
        is ``(Z,) Y, X`` uint32, ``prediction`` the ``(C, (Z,) Y, X)`` model output when known, ``foreground``
        a boolean mask of the method's foreground when known.
    needs : str or None
        What the filter needs besides labels (``"3d"``, ``"prediction"``...), shown in the listing.
    """

    name: str
    description: str
    params_model: type[BaseModel]
    func: FilterFn
    needs: str | None = None


@dataclass(frozen=True)
class FilterStep:
    """A filter name with its (unvalidated) params."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)


FILTERS: dict[str, Filter] = {}


def register_filter(
    name: str, *, params: type[BaseModel], description: str | None = None, needs: str | None = None
) -> Callable[[FilterFn], FilterFn]:
    """Register ``func(labels, params, *, prediction=None, resolution=None, foreground=None)``."""

    def decorate(func: FilterFn) -> FilterFn:
        doc = description or (func.__doc__ or name).strip().splitlines()[0]
        FILTERS[name] = Filter(name=name, description=doc, params_model=params, func=func, needs=needs)
        return func

    return decorate


def get_filter(name: str) -> Filter:
    """The filter registered as ``name``; a :class:`UserError` listing the known filters otherwise."""
    discover()
    if name not in FILTERS:
        raise UserError(
            f"unknown filter {name!r}; known filters: {', '.join(sorted(FILTERS))}",
            hint="see `runner postprocess --list`",
        )
    return FILTERS[name]


def list_filters() -> list[Filter]:
    """All registered filters, sorted by name."""
    discover()
    return [FILTERS[k] for k in sorted(FILTERS)]


def parse_filter(text: str) -> FilterStep:
    """``"remove_small:min_size=30"`` -> ``FilterStep("remove_small", {"min_size": 30})``.

    Syntax: ``NAME`` or ``NAME:KEY=VALUE,KEY=VALUE,...``. An item that is not ``key=value`` continues the
    previous value: ``voronoi:channels=0,1,threshold=0.5`` gives ``channels=[0, 1]`` (a list when all items
    are numbers), ``properties:remove_if=npixels lt 50,circularity lt 0.5`` keeps the text as one string.
    """
    from runner.parsing import parse_value

    name, _, rest = text.partition(":")
    name = name.strip().replace("-", "_")
    if not name:
        raise UserError(f"--filter expects NAME or NAME:key=value,..., got {text!r}")
    raw: dict[str, str] = {}
    last = None
    for item in (t.strip() for t in rest.split(",")):
        if not item:
            continue
        key, eq, value = item.partition("=")
        if eq and key.strip().replace("_", "").replace("-", "").isalnum() and not value.startswith("="):
            last = key.strip().replace("-", "_")
            raw[last] = value.strip()
        elif last is not None:
            raw[last] += "," + item
        else:
            raise UserError(
                f"--filter {text!r}: expected key=value, got {item!r}",
                hint="write e.g. remove_small:min_size=30",
            )
    params: dict[str, Any] = {}
    for key, value in raw.items():
        parsed = parse_value(value)
        is_numbers = isinstance(parsed, list) and all(isinstance(v, int | float) for v in parsed)
        params[key] = parsed if not isinstance(parsed, list) or is_numbers else value
    return FilterStep(name, params)


def as_step(item: FilterStep | str | tuple | dict) -> FilterStep:
    """Normalise a filter spec: step, CLI string, ``(name, params)`` pair or ``{"name", "params"}`` dict."""
    if isinstance(item, FilterStep):
        return item
    if isinstance(item, str):
        return parse_filter(item)
    if isinstance(item, tuple) and len(item) == 2:
        return FilterStep(str(item[0]), dict(item[1] or {}))
    if isinstance(item, dict) and "name" in item:
        extra = set(item) - {"name", "params"}
        if extra:
            raise UserError(
                f"filter spec {item!r} has unknown keys {sorted(extra)}; use {{'name': ..., 'params': ...}}"
            )
        return FilterStep(str(item["name"]), dict(item.get("params") or {}))
    raise UserError(
        f"cannot read filter spec {item!r}; use 'name:key=value,...' or {{'name': ..., 'params': ...}}"
    )


def prepare_filters(
    filters: Sequence[FilterStep | str | tuple | dict] | Iterable | None,
) -> list[tuple[Filter, BaseModel]]:
    """Resolve and validate filter specs up front (unknown filter or bad params -> :class:`UserError`)."""
    items = list(filters or [])
    if all(isinstance(f, tuple) and len(f) == 2 and isinstance(f[0], Filter) for f in items):
        return [(flt, validate_params(flt.params_model, p, owner=f"filter {flt.name!r}")) for flt, p in items]
    steps = [as_step(f) for f in items]
    resolved = [(get_filter(s.name), s) for s in steps]
    return [
        (flt, validate_params(flt.params_model, s.params, owner=f"filter {flt.name!r}"))
        for flt, s in resolved
    ]


def apply_filters(
    labels: np.ndarray,
    filters: Sequence[FilterStep | str | tuple | dict] | Iterable | None,
    *,
    prediction: np.ndarray | None = None,
    resolution: tuple[float, ...] | None = None,
    foreground: np.ndarray | None = None,
) -> np.ndarray:
    """Apply filters in order to a label image.

    Parameters
    ----------
    labels : (Z,) Y, X ndarray of int
        Instance labels (0 = background).
    filters : sequence
        Filter specs (see :func:`as_step`); all are validated before the first one runs.
    prediction : (C, (Z,) Y, X) ndarray, optional
        Model output, for filters that read it (Voronoi foreground).
    resolution : tuple of float, optional
        ``(Z,) Y, X`` pixel spacing.
    foreground : (Z,) Y, X ndarray of bool, optional
        The post-processor's foreground mask (from its ``debug["foreground"]``), used by Voronoi by default.

    Returns
    -------
    (Z,) Y, X ndarray of uint32
    """
    checked = prepare_filters(filters)
    out = np.asarray(labels)
    if out.ndim not in (2, 3):
        raise UserError(f"filters need a (Z,)Y,X label image, got shape {out.shape}")
    out = out.astype(np.uint32, copy=False)
    res = None if resolution is None else tuple(float(r) for r in resolution)
    if res is not None and len(res) != out.ndim:
        raise UserError(f"resolution {res} has {len(res)} values but the labels are {out.ndim}D")
    for flt, params in checked:
        out = np.asarray(flt.func(out, params, prediction=prediction, resolution=res, foreground=foreground))
        out = out.astype(np.uint32, copy=False)
    return out

"""Instance post-processing: model output ``(C, (Z,) Y, X)`` -> instance labels, plus composable filters.

Use
---
>>> from runner.postprocessing import run_postprocessor, apply_filters
>>> labels = run_postprocessor("watershed_bcd", prediction, {"th_binary": "auto"}, resolution=(2, 1, 1))
>>> labels = apply_filters(labels, ["remove_small:min_size=30", "fill_holes"], prediction=prediction)
>>> labels = run_pipeline(prediction, "watershed_bcd", {"th_distance": 0.4}, ["voronoi"])  # method + filters

``get_postprocessor(name)`` returns the :class:`PostProcessor` record (``name``, ``description``,
``params_model``, ``func``, ``code``, ``n_channels``, ``input``, ``overlapping``); ``list_postprocessors()``
lists them; ``runner postprocess --list`` prints them with their params. Unknown names, unknown or
out-of-range params, a wrong channel count and NaNs raise :class:`runner.errors.UserError`.

Registering a post-processor
----------------------------
Put a module in this package (``runner/postprocessing/<anything>.py``, not starting with ``_``), or in a
subpackage that lists it in ``REGISTERING_MODULES`` (``ppp/``, ``filters/``); every such module is imported on
the first lookup, so its ``register`` calls run. Write::

    from pydantic import Field
    from runner.postprocessing import Params, register

    class MyParams(Params):                       # extra="forbid", validate_assignment=True
        threshold: float = Field(0.5, ge=0, le=1, description="Foreground probability threshold.")

    @register("my_method", params=MyParams, code="BC", overlapping=False)
    def my_method(prediction, params, *, resolution=None, debug=None):
        '''One-line description shown by --list.'''
        ...
        return labels                             # (Z,) Y, X uint32, or (N, (Z,) Y, X) when overlapping=True

Keyword arguments of :func:`register`: ``params`` (pydantic model, required), ``description`` (default: first
docstring line), ``code`` (target code read, e.g. ``"BCD"``; sets ``n_channels``), ``n_channels`` (``None`` =
any), ``input`` (``"prediction"`` or ``"image"`` for raw images), ``overlapping`` (may return a stack),
``check`` (``check(prediction, params)`` raising :class:`UserError` for inputs the channel count cannot
judge). ``register(PostProcessor(...))`` also works. The callable receives the prediction already checked
(float32, finite, channel count), validated params, ``resolution`` as a tuple of floats or None, and ``debug``
as a dict to fill (keys ``seeds``, ``foreground``, ``surface``: arrays shaped like one channel) or None.

Thresholds are :data:`Threshold` fields (a number or ``"auto"`` = Otsu); :func:`resolve_threshold` turns them
into numbers.

Filters
-------
Same pattern with :func:`register_filter` (``runner.postprocessing.filters``): ``f(labels, params, *,
prediction=None, resolution=None, foreground=None) -> labels``. CLI syntax ``NAME:key=value,key=value`` (see
:func:`parse_filter`).
"""

from __future__ import annotations

from runner.postprocessing.filters.filtering import (
    FILTERS,
    Filter,
    FilterStep,
    apply_filters,
    get_filter,
    list_filters,
    parse_filter,
    prepare_filters,
    register_filter,
)
from runner.postprocessing.params import Threshold, resolve_threshold
from runner.postprocessing.pipeline import run_pipeline
from runner.postprocessing.registry import (
    REGISTRY,
    UNIT_GRID,
    Params,
    PostProcessor,
    get_postprocessor,
    list_postprocessors,
    register,
    run_postprocessor,
    validate_params,
)

__all__ = [
    "FILTERS",
    "REGISTRY",
    "UNIT_GRID",
    "Filter",
    "FilterStep",
    "Params",
    "PostProcessor",
    "Threshold",
    "apply_filters",
    "get_filter",
    "get_postprocessor",
    "list_filters",
    "list_postprocessors",
    "parse_filter",
    "prepare_filters",
    "register",
    "register_filter",
    "resolve_threshold",
    "run_pipeline",
    "run_postprocessor",
    "validate_params",
]

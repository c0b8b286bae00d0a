"""One call for a whole post-processing: the method, then its filters, sharing the method's foreground."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel

from runner.errors import UserError
from runner.postprocessing.filters.filtering import FilterStep, apply_filters
from runner.postprocessing.registry import PostProcessor, run_postprocessor


def run_pipeline(
    prediction: np.ndarray,
    method: str | PostProcessor,
    params: dict | BaseModel | None = None,
    filters: Sequence[FilterStep | str | tuple | dict] | None = None,
    *,
    resolution: tuple[float, ...] | None = None,
    debug: dict | None = None,
) -> np.ndarray:
    """Run post-processor ``method`` on ``prediction``, then ``filters`` in order.

    Parameters
    ----------
    prediction : (C, (Z,) Y, X) ndarray
        Model output (raw image for ``classical``).
    method : str or PostProcessor
        Registered post-processor.
    params : dict or BaseModel, optional
        Its params.
    filters : sequence, optional
        Filter specs (``"name:key=value,..."``, ``(name, params)``, ...), see :func:`apply_filters`.
    resolution : tuple of float, optional
        ``(Z,) Y, X`` spacing.
    debug : dict, optional
        Receives the method's ``seeds``, ``foreground`` and ``surface`` maps.

    Returns
    -------
    (Z,) Y, X ndarray of uint32
        Or the method's overlapping stack ``(N, (Z,) Y, X)`` when it returns one and no filter is given.
    """
    maps: dict = {} if debug is None else debug
    labels = run_postprocessor(method, prediction, params, resolution=resolution, debug=maps)
    if not filters:
        return labels
    if labels.ndim == np.asarray(prediction).ndim:
        name = method if isinstance(method, str) else method.name
        raise UserError(
            f"{name} returned an overlapping stack of {labels.shape[0]} objects; filters need a label image",
            hint="drop the filters or ask the method for a label image (e.g. output=labels)",
        )
    return apply_filters(
        labels, filters, prediction=prediction, resolution=resolution, foreground=maps.get("foreground")
    )

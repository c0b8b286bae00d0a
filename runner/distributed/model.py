"""A package as a block segmenter: the model loads once per worker process and is reused for every block.

:class:`PackageSegmenter` is a small picklable record (package path, predict options, fixed input statistics);
called on a block's image it predicts with :class:`runner.inference.Predictor` and runs the package's
post-processor. The rdf's sample statistics (percentiles, mean/std) are computed once by the driver on the
volume (:func:`volume_statistics`) and given to every block, so each block is normalised like the whole
volume rather than by its own statistics.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from runner.errors import UserError

_CACHE: dict[str, Any] = {}
_LOCK = threading.Lock()
PREDICT_LOCK = threading.Lock()
"""One prediction at a time per process: a Predictor keeps per-call state (the sample statistics between pre-
and post-processing, the last run), so worker threads sharing the cached model must not interleave calls."""
LOADS = {"count": 0}
"""How many times this process loaded a model (tests check it stays one per worker)."""

GLOBAL_THRESHOLDS = ("auto", "otsu")


@dataclass(frozen=True)
class PackageSegmenter:
    """``segmenter(image) -> labels``: ``(C, *spatial)`` float32 -> ``(*spatial)`` uint32.

    Attributes
    ----------
    package : path of the package (.zip, folder or rdf), readable from every worker.
    options : :class:`runner.inference.batch.PredictOptions` as a dict.
    stats : the input statistics every block uses (from :func:`volume_statistics`), or None.
    resolution : pixel spacing for the post-processor.
    """

    package: str
    options: dict
    stats: Any = None
    resolution: tuple[float, ...] | None = None

    def _loaded(self):
        return loaded(self.package, self.options)

    takes_region: ClassVar[bool] = True
    """:func:`runner.distributed.block.segment_block` passes where the block lies in the volume."""

    def __call__(self, image: np.ndarray, region=None) -> np.ndarray:
        from runner.postprocessing import run_pipeline

        predictor, post, options = self._loaded()
        with PREDICT_LOCK:  # the volume's statistics for this call only: the cached model is shared
            own = predictor.processing.input_stats
            if self.stats is not None:
                predictor.processing.input_stats = _Fixed(self.stats)
            try:
                outputs = predictor.predict(image, tta=bool(options.tta), where=self.package, region=region)
            finally:
                predictor.processing.input_stats = own
        key = options.output_tensor or next(iter(outputs))
        source = image if post.processor.input == "image" else outputs[key]
        labels = run_pipeline(source, post.processor, post.params, post.filters, resolution=self.resolution)
        if labels.ndim != image.ndim - 1:
            raise UserError(
                f"post-processor {post.choice.name!r} returns overlapping objects; blocks need labels"
            )
        return labels.astype(np.uint32, copy=False)


def loaded(package: str, options: dict):
    """``(predictor, post-processing, options)`` for a package, loaded on the first call in this process."""
    key = repr((package, sorted(options.items())))
    with _LOCK:
        if key not in _CACHE:
            _CACHE[key] = _load(package, options)
        return _CACHE[key]


@dataclass
class _Fixed:
    """Stands in for bioimageio.core's statistics calculator: the same statistics for every block."""

    stats: dict

    def update_and_get_all(self, sample) -> dict:
        return dict(self.stats)


def _load(package: str, options_dict: dict):
    from runner.inference.batch import PredictOptions, resolve_postprocessing
    from runner.inference.package import load_package
    from runner.inference.pipeline import Predictor

    options = PredictOptions(**options_dict)
    if options.memory_mb is None and (budget := worker_budget_mb()) is not None:
        options = options.model_copy(update={"memory_mb": budget})
    pkg = load_package(package)
    post = resolve_postprocessing(pkg, options)
    predictor = Predictor(pkg, options)
    LOADS["count"] += 1
    return predictor, post, options


def worker_budget_mb() -> float | None:
    """The network's tile budget in a Dask worker: the predictor's default (half the available memory), at
    most a quarter of the worker's memory limit (at least 256 MiB); None outside a worker or without limit."""
    try:
        from distributed import get_worker

        limit = get_worker().memory_manager.memory_limit
    except (ImportError, ValueError, AttributeError):
        return None
    if not limit:
        return None
    from runner.inference.planning import default_cpu_memory_mb

    return min(max(limit / 2**20 / 4, 256.0), default_cpu_memory_mb())


def loads() -> int:
    """Models loaded by this process (run on workers with ``client.run(loads)``)."""
    return LOADS["count"]


def check_params(post) -> None:
    """Thresholds computed from the whole image (Otsu) cannot be computed per block."""
    values = post.params.model_dump() if post.params is not None else {}
    bad = [
        k
        for k, v in values.items()
        if (k.startswith("th_") or k == "threshold") and isinstance(v, str) and v.lower() in GLOBAL_THRESHOLDS
    ]
    if bad:
        raise UserError(
            f"post-processor {post.choice.name!r} params {', '.join(bad)} are computed from the whole image "
            f"({values[bad[0]]!r}); blocks would each compute their own",
            hint=f"set them to numbers with --param {bad[0]}=VALUE",
        )


def volume_statistics(pkg, image: np.ndarray, *, trust_code: bool = False):
    """The rdf's input statistics of ``image`` ``(C, *spatial)`` (the whole volume or a coarse level of it),
    computed with bioimageio.core's calculators as :class:`runner.inference.Predictor` does; None when the
    package's processing needs none.

    Raises
    ------
    UserError
        When the output processing needs statistics of the whole output (not available blockwise).
    """
    from bioimageio.core import Sample, Tensor

    from runner.inference.geometry import build_geometry
    from runner.inference.processing import Processing

    processing = Processing.from_description(pkg.descr, trust_code=trust_code, where=pkg.source)
    if processing.output_stats is not None:
        raise UserError(
            "the package's output processing needs statistics of the whole output; it cannot run blockwise",
            path=pkg.source,
        )
    if processing.input_stats is None:
        return None
    geo = build_geometry(pkg)
    name = next(iter(geo.inputs))
    layout = geo.inputs[name]
    arr = layout.to_model(image[None], layout.input_nonspace_sizes(image.shape[0]))
    members: dict[Any, Tensor] = {name: Tensor(arr, dims=layout.tensor.axis_ids)}
    sample = Sample(members=members, stat={}, id=None)
    return processing.input_stats.update_and_get_all(sample)

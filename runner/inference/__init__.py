"""Run any bioimage.io model package: loading, weight formats, devices, rdf processing, tiling, batch runs.

Public API (imported lazily, so ``import runner.inference`` stays light):

- :func:`load_package` (``.zip``, folder or rdf path; 0.4/0.5; offline) -> :class:`Package`
- :class:`Predictor` (a loaded network; ``.predict(image) -> {output_id: array}``) and :func:`predict_array`
  (one call for one image), both with arrays in the engine layout ``(C, (Z,) Y, X)`` and settings from one
  :class:`InferenceOptions` (which ``runner predict``'s :class:`PredictOptions` extends)
- :func:`reproduce_test_outputs` (run the package's test inputs like ``bioimageio test`` does and compare)
- :func:`predict_files` (the ``runner predict`` batch job: files in, instances/probabilities/metrics out)
- :func:`plan_tiles`, :func:`run_tiled` (pure tiling functions), :func:`resolve_device`
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "Package": "runner.inference.package",
    "TensorInfo": "runner.inference.package",
    "AxisInfo": "runner.inference.package",
    "PostprocessingChoice": "runner.inference.package",
    "load_package": "runner.inference.package",
    "Predictor": "runner.inference.pipeline",
    "predict_array": "runner.inference.pipeline",
    "RunInfo": "runner.inference.planning",
    "reproduce_test_outputs": "runner.inference.testing",
    "TestResult": "runner.inference.testing",
    "predict_files": "runner.inference.batch",
    "PredictOptions": "runner.inference.batch",
    "InferenceOptions": "runner.inference.options",
    "plan_tiles": "runner.inference.tiling",
    "run_tiled": "runner.inference.tiling",
    "TilePlan": "runner.inference.tiling",
    "OutputGeometry": "runner.inference.tiling",
    "SizeRule": "runner.inference.sizes",
    "Device": "runner.inference.devices",
    "resolve_device": "runner.inference.devices",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'runner.inference' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__

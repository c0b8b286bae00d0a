"""Trained bmz-runner runs -> bioimage.io model packages that run everywhere, and offline package tests.

>>> from exporters import export_package, check_package
>>> result = export_package("runs/bcd", "bcd_nuclei.zip", weights=["torchscript", "onnx", "state_dict"])
>>> result.report.passed, result.validation["accuracy@0.5"]
>>> print(check_package("bcd_nuclei.zip", trust_code=True).format())

A package holds TorchScript (scripted), ONNX (opset <= 18) and PyTorch state-dict weights (with the network
as one self-contained source file), test tensors cut from a real validation image, sample tensors, a cover,
a README with a ``# Validation`` section, and ``config.runner`` (target code, post-processor and params,
training recipe, validation metrics). The rdf is written as format 0.5.4 with plain-string covers and
documentation so that bioimageio.spec 0.5.4.1 and newer, ilastik, deepImageJ and QuPath read it. Nothing is
written unless bioimageio.core's test and bmz-runner's own check pass.

Modules: :mod:`~exporters.build` (orchestration), :mod:`~exporters.weights`, :mod:`~exporters.samples`,
:mod:`~exporters.evaluation`, :mod:`~exporters.cover`, :mod:`~exporters.docs`, :mod:`~exporters.config`,
:mod:`~exporters.rdf`, :mod:`~exporters.compat`, :mod:`~exporters.checks`, :mod:`~exporters.offline`,
:mod:`~exporters.compat_matrix` (script: load a package with several bioimageio.spec releases).
Heavy libraries (torch, bioimageio) are imported only when a function runs.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "export_package": "exporters.build",
    "ExportResult": "exporters.build",
    "PackageInvalid": "exporters.build",
    "ExportOptions": "exporters.options",
    "check_package": "exporters.checks",
    "PackageReport": "exporters.checks",
    "CheckResult": "exporters.checks",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'exporters' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__

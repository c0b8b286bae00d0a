"""What the napari widget does, without Qt: describe a package, turn a layer into the engine layout, and run
:func:`runner.inference.batch.predict_files` (the function behind ``runner predict``) on it.

The layer is written to a temporary TIFF and predicted exactly as the CLI predicts a file, so the widget
and ``runner predict`` give the same instances; nothing here re-implements prediction or post-processing.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from runner.errors import UserError
from runner.inference.package import Package


@dataclass
class ParamView:
    """One post-processor param as the widget shows it."""

    name: str
    value: str
    """The package's tuned value (else the default), as the text a user would type after ``--param k=``."""
    allowed: str
    """Range or choices, e.g. ``[0, 1] or auto``."""
    doc: str


@dataclass
class PackageView:
    """What the widget shows about a loaded package."""

    name: str
    ndim: int
    n_channels: int | None
    axes: str
    postprocessor: str | None
    params: list[ParamView] = field(default_factory=list)
    trust_needed: str | None = None
    """Why the package can only run its own Python code (None when it runs without)."""
    tta: bool = False


def _text(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(_text(v) for v in value)
    if value is None:
        return "none"
    return str(value).lower() if isinstance(value, bool) else str(value)


def _trust_needed(pkg: Package) -> str | None:
    from runner.inference.adapters import candidate_formats
    from runner.inference.devices import resolve_device

    try:
        candidate_formats(pkg, device=resolve_device("auto"), weights=None, trust_code=False)
    except UserError as exc:
        return str(exc) if "Python source" in str(exc) else None
    return None


def describe_package(pkg: Package) -> PackageView:
    """The package's input layout, post-processor with its params and ranges, and whether it needs trust."""
    from runner.postprocessing import get_postprocessor
    from runner.postprocessing.describe import param_docs

    tensor = pkg.inputs[0]
    view = PackageView(
        name=pkg.name,
        ndim=len(tensor.space_axes),
        n_channels=tensor.n_channels,
        axes=tensor.axes_string,
        postprocessor=None,
        trust_needed=_trust_needed(pkg),
        tta=pkg.test_time_augmentation,
    )
    declared = pkg.postprocessing
    if declared is None:
        return view
    processor = get_postprocessor(declared.name)
    tuned = processor.make_params(declared.params).model_dump(mode="json")
    view.postprocessor = declared.name
    view.params = [
        ParamView(d.name, _text(tuned.get(d.name)), d.allowed, d.doc)
        for d in param_docs(processor.params_model)
    ]
    return view


def to_engine(data: Any, *, rgb: bool, view: PackageView, layer: str) -> np.ndarray:
    """A napari image layer's data as the engine's ``(C, (Z,) Y, X)`` array for ``view``'s package.

    Raises
    ------
    UserError
        The layer's dimensions or channel count do not fit the package (the message says which and how).
    """
    arr = np.asarray(data[0] if isinstance(data, list) else data)  # multiscale: the full resolution
    if rgb:
        arr = np.moveaxis(arr, -1, 0)
    elif arr.ndim == view.ndim:
        arr = arr[np.newaxis]
    want = f"{view.n_channels or 'any number of'} channel(s) of a {view.ndim}D image"
    if arr.ndim != view.ndim + 1:
        raise UserError(
            f"layer {layer!r} has shape {tuple(np.shape(data))}, but package {view.name!r} wants {want} "
            f"(axes {view.axes})",
            hint="pick another layer, or a 2D/3D package that fits it",
        )
    if view.n_channels is not None and arr.shape[0] != view.n_channels:
        raise UserError(
            f"layer {layer!r} of shape {tuple(np.shape(data))} has {arr.shape[0]} channel(s), but package "
            f"{view.name!r} wants {want}",
            hint="pick a layer with that many channels (split an RGB layer with right-click > Split RGB)",
        )
    return arr


@dataclass
class Segmentation:
    """What a run returns: the instances, or the one-line reason it could not run."""

    labels: np.ndarray | None
    message: str
    seconds: float = 0.0


def segment(
    pkg: Package,
    image: np.ndarray,
    *,
    params: dict[str, Any],
    trust_code: bool,
    tta: bool | None = None,
    on_tiles: Callable[[int, int], None] | None = None,
) -> Segmentation:
    """Predict ``image`` (``(C, (Z,) Y, X)``) with ``pkg`` through :func:`predict_files`.

    Bad input, and packages needing code the user did not allow, come back as ``message`` with no labels.
    """
    from runner.inference.batch import PredictBatchError, PredictOptions, predict_files
    from runner.io import read_labels, write_image

    options = PredictOptions(params=params, trust_code=trust_code, tta=tta, progress=False)
    with tempfile.TemporaryDirectory(prefix="bmz-runner-napari-") as tmp:
        source = Path(tmp) / "layer.tif"
        write_image(source, image)
        try:
            report = predict_files(pkg, [str(source)], Path(tmp) / "out", options=options, on_tiles=on_tiles)
        except PredictBatchError as exc:
            return Segmentation(
                None, next(iter(exc.report.failures.values())).replace(str(source), "the layer")
            )
        except UserError as exc:
            return Segmentation(None, str(exc).replace(str(source), "the layer"))
        labels = read_labels(Path(tmp) / "out" / "instances" / "layer.tif").data
    n = int(len(np.unique(labels)) - (labels == 0).any())
    return Segmentation(
        labels, f"{n} object(s) with {report.weight_format} weights in {report.seconds:.1f} s", report.seconds
    )

"""Run a package three ways and compare: ``runner predict`` (CLI, TIFF files), bioimageio.core, test output.

``runner predict`` is called through the typer app exactly as a user types it: one TIFF per sample (a folder
of them when the test tensor holds several samples), ``--input NAME=FILE`` per input for several inputs,
``--no-postprocess`` (raw model outputs after the rdf's post-processing), ``--weights`` and ``--device``.
bioimageio.core predicts the whole test sample as ``bioimageio test`` does
(``predict_sample_without_blocking`` without padding or cropping). Outputs are compared in the canonical
layout ``(B, C, (Z,) Y, X)`` with the package's reproducibility tolerance (or the spec's default): an
element mismatches when ``|actual - expected| > atol + rtol * |expected|``; at most
``mismatched_elements_per_million`` may.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

AXIS_NAMES = {"b": "batch", "c": "channel", "i": "index", "t": "time"}
"""Format-0.4 axis letters -> format-0.5 axis ids."""


@dataclass(frozen=True)
class Tolerance:
    rtol: float = 1e-3
    atol: float = 1e-3
    ppm: float = 100.0


@dataclass(frozen=True)
class Comparison:
    """One output compared with a reference."""

    max_abs_diff: float
    mismatched: int
    size: int
    ok: bool
    note: str = ""

    def describe(self) -> str:
        if self.note:
            return self.note
        return f"max abs diff {self.max_abs_diff:.2g}, {self.mismatched}/{self.size} mismatched"


@dataclass
class Outcome:
    """What one run of a package gave (per output id)."""

    name: str
    weights: str
    device: str
    runner_error: str | None = None
    core_error: str | None = None
    vs_core: dict[str, Comparison] = field(default_factory=dict)
    vs_test: dict[str, Comparison] = field(default_factory=dict)

    @property
    def runner_ok(self) -> bool:
        return self.runner_error is None and all(c.ok for c in self.vs_test.values())

    @property
    def core_ok(self) -> bool:
        return (
            self.runner_error is None and self.core_error is None and all(c.ok for c in self.vs_core.values())
        )

    def summary(self) -> str:
        parts = [f"{self.name} [{self.weights}, {self.device}]"]
        if self.runner_error:
            parts.append(f"runner failed: {self.runner_error}")
        if self.core_error:
            parts.append(f"core failed: {self.core_error}")
        parts += [f"{k} vs core: {c.describe()}" for k, c in self.vs_core.items()]
        parts += [f"{k} vs test output: {c.describe()}" for k, c in self.vs_test.items()]
        return "; ".join(parts)


def compare(actual: np.ndarray, expected: np.ndarray, tol: Tolerance) -> Comparison:
    if actual.shape != expected.shape:
        return Comparison(
            np.inf, expected.size, expected.size, False, f"shape {actual.shape} != {expected.shape}"
        )
    a, e = actual.astype(np.float64), expected.astype(np.float64)
    diff = np.abs(a - e)
    bad = int((diff > tol.atol + tol.rtol * np.abs(e)).sum())
    ok = bad <= tol.ppm * e.size / 1e6
    return Comparison(float(diff.max()) if diff.size else 0.0, bad, int(e.size), ok)


def tolerance_of(descr, weights: str) -> Tolerance:
    """The package's ``reproducibility_tolerance`` for ``weights`` (first match), else the spec's default."""
    config = getattr(descr, "config", None)
    entries = getattr(getattr(config, "bioimageio", None), "reproducibility_tolerance", None) or ()
    for t in entries:
        if not t.weights_formats or weights in t.weights_formats:
            return Tolerance(t.relative_tolerance, t.absolute_tolerance, t.mismatched_elements_per_million)
    return Tolerance()


def canonical(arr: np.ndarray, dims) -> np.ndarray:
    """Model layout (axis ids ``dims``) -> ``(B, C, (Z,) Y, X)`` (adds missing batch/channel axes)."""
    dims = [AXIS_NAMES.get(str(d), str(d)) for d in dims]
    if "batch" not in dims:
        arr, dims = arr[None], ["batch", *dims]
    if "channel" not in dims:
        arr, dims = arr[:, None], [dims[0], "channel", *dims[1:]]
    order = ["batch", "channel", *(d for d in ("z", "y", "x") if d in dims)]
    return np.transpose(arr, [dims.index(d) for d in order])


@dataclass(frozen=True)
class TensorIO:
    """Ids and test tensors of a package, canonical layout."""

    inputs: dict[str, np.ndarray]
    outputs: dict[str, np.ndarray]
    input_dims: dict[str, tuple[str, ...]]


def test_tensors(descr) -> TensorIO:
    """The package's test inputs and outputs in ``(B, C, (Z,) Y, X)``."""
    from bioimageio.core.digest_spec import get_test_input_sample, get_test_output_sample

    ins, outs = get_test_input_sample(descr), get_test_output_sample(descr)
    return TensorIO(
        inputs={str(k): canonical(np.asarray(t.data), t.dims) for k, t in ins.members.items()},
        outputs={str(k): canonical(np.asarray(t.data), t.dims) for k, t in outs.members.items()},
        input_dims={
            str(k): tuple(AXIS_NAMES.get(str(d), str(d)) for d in t.dims) for k, t in ins.members.items()
        },
    )


def core_predict(descr, weights: str, device: str, *, sequential: bool = False) -> dict[str, np.ndarray]:
    """bioimageio.core's whole-sample prediction of the test input, as ``bioimageio test`` computes it.

    ``sequential``: each sample of the test input in turn through one pipeline (its dataset statistics
    running over the samples so far, as ``predict_many`` does), the outputs stacked along the batch axis.
    """
    from bioimageio.core import Sample, Tensor, create_prediction_pipeline
    from bioimageio.core.digest_spec import get_test_input_sample

    whole = get_test_input_sample(descr)
    samples = [whole]
    if sequential:
        arrays = {k: (np.asarray(t.data), tuple(t.dims)) for k, t in whole.members.items()}
        n = next(a.shape[d.index("batch")] for a, d in arrays.values())
        samples = [
            Sample(
                members={
                    k: Tensor.from_numpy(np.take(a, [b], axis=d.index("batch")), dims=d)
                    for k, (a, d) in arrays.items()
                },
                stat={},
                id=b,
            )
            for b in range(n)
        ]
    outs: dict[str, list[np.ndarray]] = {}
    with create_prediction_pipeline(descr, weight_format=weights, devices=[device]) as pp:  # type: ignore[arg-type]
        for sample in samples:
            out = pp.predict_sample_without_blocking(
                sample, skip_input_padding=True, skip_output_cropping=True
            )
            for k, t in out.members.items():
                outs.setdefault(str(k), []).append(canonical(np.asarray(t.data), t.dims))
    return {k: np.concatenate(v) for k, v in outs.items()}


def write_inputs(io: TensorIO, folder: Path) -> tuple[list[str], list[str]]:
    """One TIFF per input and sample; returns the ``--input`` arguments and any other options needed.

    Channel-first data is written as OME-TIFF ``C(Z)YX`` (axes in the metadata); channel-last data as a plain
    ``(Z)YXC`` TIFF without metadata, read with ``--axes`` as a user of such files would.
    """
    import tifffile

    from runner.io import write_tiff

    args, extra = [], []
    for name, arr in io.inputs.items():
        sub = folder / name
        sub.mkdir(parents=True, exist_ok=True)
        space = "zyx"[-(arr.ndim - 2) :]
        dims = io.input_dims[name]
        channel_last = dims.index("channel") == len(dims) - 1 if "channel" in dims else False
        for b in range(arr.shape[0]):
            if channel_last:
                tifffile.imwrite(sub / f"sample{b}.tif", np.moveaxis(arr[b], 0, -1))
            else:
                write_tiff(sub / f"sample{b}.tif", arr[b], axes="c" + space)
        if channel_last:
            extra = ["--axes", space + "c"]
        target = sub if arr.shape[0] > 1 else sub / "sample0.tif"
        args.append(f"{name}={target}" if len(io.inputs) > 1 else str(target))
    return args, extra


def runner_predict(
    package: Path, io: TensorIO, work: Path, *, weights: str, device: str, extra: tuple[str, ...] = ()
) -> tuple[dict[str, np.ndarray] | None, str | None]:
    """``runner predict`` through the CLI; canonical outputs per output id, or the error it printed."""
    import tifffile
    from typer.testing import CliRunner

    from runner.cli import app

    work.mkdir(parents=True, exist_ok=True)
    out = work / "out"
    args = ["predict", str(package), "--output", str(out), "--no-postprocess", "--quiet"]
    inputs, options = write_inputs(io, work / "in")
    for a in inputs:
        args += ["--input", a]
    args += ["--weights", weights, "--device", device, *options, *extra]
    if weights == "pytorch_state_dict":
        args.append("--trust-code")
    result = CliRunner().invoke(app, args)
    if result.exit_code != 0:
        lines = [ln.strip() for ln in result.output.splitlines() if ln.strip()]
        start = next((i for i, ln in enumerate(lines) if ln.startswith("error")), max(len(lines) - 1, 0))
        msg = " ".join(lines[start : start + 3])
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            msg = f"{type(result.exception).__name__}: {result.exception}"
        return None, f"exit {result.exit_code}: {msg}"[:400]
    prob = out / "probabilities"
    n = next(iter(io.inputs.values())).shape[0]
    outputs: dict[str, np.ndarray] = {}
    for oid in io.outputs:
        sub = prob if len(io.outputs) == 1 else prob / oid
        outputs[oid] = np.stack([tifffile.imread(sub / f"sample{b}.tif") for b in range(n)])
    return outputs, None


def run_package(
    package: Path,
    work: Path,
    *,
    name: str,
    weights: str,
    device: str = "cpu",
    with_core: bool = True,
    sequential: bool = False,
    extra: tuple[str, ...] = (),
) -> Outcome:
    """Predict the package's test input with the runner (and bioimageio.core) and compare."""
    from bioimageio.spec import load_description

    descr = load_description(package, perform_io_checks=False)
    if not hasattr(descr, "weights"):
        raise ValueError(f"not a model description: {package}")
    tol = tolerance_of(descr, weights)
    io = test_tensors(descr)
    outcome = Outcome(name, weights, device)
    got, outcome.runner_error = runner_predict(package, io, work, weights=weights, device=device, extra=extra)
    if got is None:
        return outcome
    for oid, expected in io.outputs.items():
        outcome.vs_test[oid] = _compare_reshaped(got[oid], expected, tol)
    if with_core:
        try:
            core = core_predict(descr, weights, device, sequential=sequential)
        except Exception as exc:  # recorded: the case states whether core is expected to run it
            outcome.core_error = f"{type(exc).__name__}: {exc}"[:400]
        else:
            for oid, ref in core.items():
                outcome.vs_core[oid] = _compare_reshaped(got[oid], ref, tol)
    return outcome


def _compare_reshaped(got: np.ndarray, expected: np.ndarray, tol: Tolerance) -> Comparison:
    """The runner writes ``(C, *space)`` per sample; a channel-less output comes back as ``(1, *space)``.

    A model whose outputs are smaller than its input (valid convolutions, negative size offset) gets an output
    covering the whole image from the runner (the image is extended by the missing context), bioimageio.core
    returns the valid region only: then the centre of the runner's output is compared, and the note says so.
    """
    if got.shape != expected.shape and got.size == expected.size:
        got = got.reshape(expected.shape)
    extra = [g - e for g, e in zip(got.shape[2:], expected.shape[2:], strict=False)]
    if got.shape[:2] == expected.shape[:2] and got.ndim == expected.ndim and any(extra):
        if all(d > 0 and d % 2 == 0 for d in extra):
            centre = tuple(slice(d // 2, d // 2 + e) for d, e in zip(extra, expected.shape[2:], strict=True))
            result = compare(got[(slice(None), slice(None), *centre)], expected, tol)
            note = f"{result.describe()} (runner output {got.shape[2:]} covers the image; centre compared)"
            return Comparison(result.max_abs_diff, result.mismatched, result.size, result.ok, note)
    return compare(got, expected, tol)


def outcome_dict(o: Outcome) -> dict[str, Any]:
    """JSON-friendly form of an outcome (for result files and the table script)."""
    return {
        "name": o.name,
        "weights": o.weights,
        "device": o.device,
        "runner_error": o.runner_error,
        "core_error": o.core_error,
        "vs_core": {k: c.__dict__ for k, c in o.vs_core.items()},
        "vs_test": {k: c.__dict__ for k, c in o.vs_test.items()},
        "runner_ok": o.runner_ok,
        "core_ok": o.core_ok,
    }

"""Reproduce a package's test outputs the way ``runner predict`` computes them, and say where they differ.

Two paths, both with the default prediction settings (one pass when the test input fits, as ``runner
predict`` does; the package's halo not padded, border policy ``image``):

- in memory: the test tensors through :class:`runner.inference.Predictor`;
- through files (``through_files=True``): each test input written as a TIFF, ``runner predict``'s own batch
  job (:func:`runner.inference.batch.predict_files` with ``--no-postprocess``) run on them, and the TIFFs it
  wrote read back, so the check covers what a user gets from the command line.

Tolerances default to bioimageio.core's: an element mismatches when ``|actual - expected| > atol + rtol *
|expected|``, and at most ``mismatched_ppm`` per million may. The largest difference is reported with its
position (``batch, channel, (z,) y, x``).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from runner.errors import UserError
from runner.inference.package import Package, load_package


@dataclass(frozen=True)
class TestResult:
    """Comparison of one output tensor with the package's test output."""

    __test__ = False  # not a pytest test class

    output: str
    max_abs_diff: float
    mismatched: int
    size: int
    ok: bool
    worst_at: str = ""
    """Where the largest difference is, e.g. ``b=0, c=1, y=3, x=500`` (empty when there is none)."""
    shapes: str = ""
    """``got (…) expected (…)`` when the shapes differ."""

    def describe(self, *, rtol: float, atol: float, ppm: float) -> str:
        """One line for reports."""
        if self.shapes:
            return f"output {self.output}: shape differs: {self.shapes}"
        where = f" at {self.worst_at}" if self.worst_at else ""
        return (
            f"output {self.output}: {self.mismatched} of {self.size} elements outside rtol {rtol:g} / atol "
            f"{atol:g} (allowed {ppm:g} per million); max |diff| {self.max_abs_diff:.3g}{where}"
        )


def _load_test_tensor(pkg: Package, tensor_id: str, what: str) -> np.ndarray:
    path = pkg.test_tensor_file(tensor_id)
    if path is None:
        raise UserError(f"the package has no test tensor for {what}", path=pkg.source)
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read the test tensor ({exc})", path=path) from None


def reproduce_test_outputs(
    package: Package | str | Path,
    *,
    device: str = "cpu",
    weights: str | None = None,
    trust_code: bool = False,
    rtol: float = 1e-3,
    atol: float = 1e-3,
    mismatched_ppm: float = 100.0,
    through_files: bool = False,
) -> list[TestResult]:
    """Predict the package's test inputs as ``runner predict`` does and compare with its test outputs."""
    from runner.inference.pipeline import Predictor

    pkg = package if isinstance(package, Package) else load_package(package)
    with Predictor(pkg, device=device, weights=weights, trust_code=trust_code, tta=False) as predictor:
        geo = predictor.geometry
        canon = {}
        for t in pkg.inputs:
            arr = _load_test_tensor(pkg, t.id, f"input {t.id}")
            canon[t.id] = geo.inputs[t.id].to_canonical(arr)[0]
        n_batch = next(iter(canon.values())).shape[0]
        if through_files:
            actual = _through_files(
                pkg, canon, n_batch, device=device, weights=weights, trust_code=trust_code
            )
        else:
            actual = {}
            for b in range(n_batch):
                for k, v in predictor.predict({k: v[b] for k, v in canon.items()}).items():
                    actual.setdefault(k, []).append(v)
        letters = ("b", "c", *geo.letters)
        results = []
        for t in pkg.outputs:
            expected = geo.outputs[t.id].to_canonical(_load_test_tensor(pkg, t.id, f"output {t.id}"))[0]
            got = _model_region(np.stack(actual[t.id]), expected.shape, geo.output_geometry.get(t.id))
            results.append(_compare(t.id, got, expected, letters, rtol, atol, mismatched_ppm))
    return results


def _model_region(got: np.ndarray, shape: tuple[int, ...], geometry) -> np.ndarray:
    """For models that crop their outputs (``offset < 0``), runner's outputs still cover the whole image; the
    model's own output (what the test output holds) is their central part, ``-offset / 2`` pixels in."""
    if geometry is None or got.shape == shape or len(got.shape) != len(shape):
        return got
    crops = [int(geometry.crop_at(k)) for k in range(len(shape) - 2)]
    if not any(crops) or any(g - 2 * c != e for g, c, e in zip(got.shape[2:], crops, shape[2:], strict=True)):
        return got
    return got[(slice(None), slice(None), *(slice(c, c + e) for c, e in zip(crops, shape[2:], strict=True)))]


def _compare(oid, got, expected, letters, rtol, atol, ppm) -> TestResult:
    if got.shape != expected.shape:
        shapes = f"got {tuple(got.shape)}, expected {tuple(expected.shape)} (batch, channel, space)"
        return TestResult(oid, float("inf"), int(expected.size), int(expected.size), False, shapes=shapes)
    diff = np.abs(got.astype(np.float64) - expected)
    bad = int((diff > atol + rtol * np.abs(expected)).sum())
    ok = bad <= ppm * expected.size / 1e6
    if not diff.size:
        return TestResult(oid, 0.0, 0, 0, ok)
    index = np.unravel_index(int(np.argmax(diff)), diff.shape)
    where = ", ".join(f"{a}={int(i)}" for a, i in zip(letters, index, strict=False))
    return TestResult(oid, float(diff.max()), bad, int(expected.size), ok, worst_at=where)


def _through_files(
    pkg: Package, canon: dict[str, np.ndarray], n_batch: int, *, device: str, weights, trust_code: bool
) -> dict[str, list[np.ndarray]]:
    """Write the test inputs as TIFFs, run ``runner predict``'s batch job on them, read its TIFFs back."""
    from runner.inference.batch import PredictOptions, predict_files
    from runner.io import read_image, write_image

    options = PredictOptions(
        device=device, weights=weights, trust_code=trust_code, no_postprocess=True, progress=False, tta=False
    )
    actual: dict[str, list[np.ndarray]] = {}
    with tempfile.TemporaryDirectory(prefix="runner-test-") as tmp:
        root = Path(tmp)
        for b in range(n_batch):
            specs = []
            for name, arr in canon.items():
                path = root / f"in{b}" / name / f"sample{b}.tif"
                path.parent.mkdir(parents=True)
                write_image(path, np.ascontiguousarray(arr[b]))
                specs.append(f"{name}={path}" if len(canon) > 1 else str(path))
            out = root / f"out{b}"
            predict_files(pkg, specs, out, options=options)
            for t in pkg.outputs:
                sub = out / "probabilities" / (t.id if len(pkg.outputs) > 1 else "")
                data = read_image(sub / f"sample{b}.tif").data
                actual.setdefault(t.id, []).append(data)
    return actual

"""Reproduce a package's test outputs the way ``bioimageio test`` does (whole test tensor, one pass).

The exporter uses this to check that ``runner predict`` reproduces what it wrote into the package; tests use
it on the vendored zoo model. Tolerances default to bioimageio.core's: an element mismatches when
``|actual - expected| > atol + rtol * |expected|``, and at most ``mismatched_ppm`` per million may.
"""

from __future__ import annotations

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


def _load_test_tensor(pkg: Package, tensor_descr, what: str) -> np.ndarray:
    test = getattr(tensor_descr, "test_tensor", None)
    if test is None:
        raise UserError(f"the package has no test tensor for {what}", path=pkg.source)
    path = pkg.file(test.source, sha256=getattr(test, "sha256", None), what=f"test tensor of {what}")
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
) -> list[TestResult]:
    """Run the package's test inputs (``tile="whole"``) and compare with its test outputs per tensor."""
    from runner.inference.pipeline import Predictor

    pkg = package if isinstance(package, Package) else load_package(package)
    with Predictor(pkg, device=device, weights=weights, trust_code=trust_code, tile="whole") as predictor:
        geo = predictor.geometry
        canon = {}
        for t in pkg.descr.inputs:
            arr = _load_test_tensor(pkg, t, f"input {t.id}")
            canon[str(t.id)] = geo.inputs[str(t.id)].to_canonical(arr)[0]
        n_batch = next(iter(canon.values())).shape[0]
        actual: dict[str, list[np.ndarray]] = {}
        for b in range(n_batch):
            outs = predictor.predict({k: v[b] for k, v in canon.items()}, tile="whole")
            for k, v in outs.items():
                actual.setdefault(k, []).append(v)
        results = []
        for t in pkg.descr.outputs:
            oid = str(t.id)
            expected = geo.outputs[oid].to_canonical(_load_test_tensor(pkg, t, f"output {oid}"))[0]
            got = np.stack(actual[oid])
            if got.shape != expected.shape:
                results.append(TestResult(oid, float("inf"), int(expected.size), int(expected.size), False))
                continue
            diff = np.abs(got.astype(np.float64) - expected)
            bad = int((diff > atol + rtol * np.abs(expected)).sum())
            ok = bad <= mismatched_ppm * expected.size / 1e6
            results.append(
                TestResult(oid, float(diff.max()) if diff.size else 0.0, bad, int(expected.size), ok)
            )
    return results

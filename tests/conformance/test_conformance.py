"""``runner predict`` (CLI, TIFF files) against bioimageio.core and the test output, for every conformance
case and weight format; CPU in the default/slow suites, CUDA (torch and ONNX Runtime's CUDA provider) under
``gpu``.

The default suite runs the weight formats listed in each case's ``default`` (a representative subset, about a
minute on 2 cores); ``-m slow`` runs the full case x weight-format matrix; ``-m gpu`` the same matrix on CUDA.
"""

from __future__ import annotations

import pytest

from tests.conformance.cases import CASES, WEIGHT_FORMATS, Case
from tests.conformance.expectations import KNOWN_FAILURES, ZOO_FAILURE, ZOO_PACKAGE
from tests.conformance.harness import Outcome, run_package


def _params(device: str) -> list:
    params = []
    for case in CASES:
        for weights in WEIGHT_FORMATS:
            marks: list = []
            if device == "cuda":
                marks.append(pytest.mark.gpu)
            elif weights not in case.default:
                marks.append(pytest.mark.slow)
            if case.id in KNOWN_FAILURES:
                marks.append(pytest.mark.xfail(strict=True, reason=KNOWN_FAILURES[case.id]))
            params.append(pytest.param(case, weights, id=f"{case.id}-{weights}", marks=marks))
    return params


def assert_conforms(outcome: Outcome, *, with_core: bool) -> None:
    """The runner ran, reproduced the test output and (where core runs the package) core's prediction."""
    assert outcome.runner_error is None, outcome.summary()
    assert outcome.vs_test and all(c.ok for c in outcome.vs_test.values()), outcome.summary()
    if with_core:
        assert outcome.core_error is None, outcome.summary()
        assert set(outcome.vs_core) == set(outcome.vs_test), outcome.summary()
        assert all(c.ok for c in outcome.vs_core.values()), outcome.summary()


def _run(case: Case, weights: str, device: str, packages, tmp_path, *, extra: tuple[str, ...] = ()) -> None:
    built = packages(case)
    outcome = run_package(
        built.folder,
        tmp_path,
        name=case.id,
        weights=weights,
        device=device,
        with_core=case.core_cannot is None,
        sequential=case.running_stats,
        extra=extra,
    )
    assert_conforms(outcome, with_core=case.core_cannot is None)


@pytest.mark.parametrize(("case", "weights"), _params("cpu"))
def test_case_cpu(case: Case, weights: str, packages, tmp_path) -> None:
    _run(case, weights, "cpu", packages, tmp_path)


def _require_cuda(weights: str) -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    if weights == "onnx":
        ort = pytest.importorskip("onnxruntime")
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            pytest.skip("onnxruntime without the CUDA provider (install the gpu extra: onnxruntime-gpu)")


@pytest.mark.parametrize(("case", "weights"), _params("cuda"))
def test_case_cuda(case: Case, weights: str, packages, tmp_path) -> None:
    _require_cuda(weights)
    _run(case, weights, "cuda", packages, tmp_path)


def _zoo_params() -> list:
    params = []
    for weights, device, mark in [
        ("onnx", "cpu", None),
        ("torchscript", "cpu", pytest.mark.slow),
        ("onnx", "cuda", pytest.mark.gpu),
        ("torchscript", "cuda", pytest.mark.gpu),
    ]:
        marks = [m for m in (mark,) if m is not None]
        if ZOO_FAILURE:
            marks.append(pytest.mark.xfail(strict=True, reason=ZOO_FAILURE))
        params.append(pytest.param(weights, device, id=f"{weights}-{device}", marks=marks))
    return params


@pytest.mark.parametrize(("weights", "device"), _zoo_params())
def test_zoo_unet2d_nuclei_broad(weights: str, device: str, tmp_path) -> None:
    """A third-party package: its test input through the CLI gives its test output (and core's prediction)."""
    if device == "cuda":
        _require_cuda(weights)
    outcome = run_package(
        ZOO_PACKAGE / "rdf.yaml", tmp_path, name="unet2d_nuclei_broad", weights=weights, device=device
    )
    assert_conforms(outcome, with_core=True)

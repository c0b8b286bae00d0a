"""The rdf's pre/post-processing as ``runner predict`` applies it (``runner.inference.processing``)
against the independent numpy reference, for every conformance case (no network, no tiling)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conformance.build import INPUT_IDS, OUTPUT_IDS, tensor_dims
from tests.conformance.cases import CASES, Case
from tests.conformance.reference import apply_ops


@pytest.mark.parametrize("case", [c for c in CASES if any(c.pre) or any(c.post)], ids=lambda c: c.id)
def test_processing_matches_reference(case: Case, packages) -> None:
    from runner.inference.package import load_package
    from runner.inference.processing import Processing

    pkg = load_package(packages(case).folder)  # as runner predict loads it (0.4 converted where possible)
    proc = Processing.from_description(pkg.descr)
    dims = tensor_dims(case)  # the reference's axis names; the runner's are the package's own ids
    ids = {t.id: t.axis_ids for t in (*pkg.inputs, *pkg.outputs)}
    rng = np.random.default_rng(3)
    ins = {name: np.load(packages(case).folder / f"test_{name}.npy") for name in INPUT_IDS[: case.n_inputs]}
    raw = {k: v.astype(np.float64) for k, v in ins.items()}
    pre = proc.preprocess({k: v.copy() for k, v in ins.items()}, {k: ids[k] for k in ins})
    for i, name in enumerate(INPUT_IDS[: case.n_inputs]):
        expected = apply_ops(raw[name], dims, case.pre[i], tensors=raw)
        np.testing.assert_allclose(pre[name], expected, rtol=1e-5, atol=1e-5, err_msg=f"{case.id} {name}")
    shape = {d: n for d, n in zip(dims, next(iter(ins.values())).shape, strict=True)}
    outs = {}
    for i, name in enumerate(OUTPUT_IDS[: case.n_outputs]):
        out_shape = tuple(case.out_channels[i] if d == "channel" else shape[d] for d in dims)
        outs[name] = rng.normal(0.0, 1.0, size=out_shape).astype(np.float32)
    post = proc.postprocess({k: v.copy() for k, v in outs.items()}, {k: ids[k] for k in outs})
    for i, name in enumerate(OUTPUT_IDS[: case.n_outputs]):
        expected = apply_ops(outs[name], dims, case.post[i], tensors=raw)
        np.testing.assert_allclose(post[name], expected, rtol=1e-5, atol=1e-5, err_msg=f"{case.id} {name}")

"""The feature table of docs/COMPATIBILITY.md is rendered from outcomes (no network, no packages)."""

from __future__ import annotations

import json

from tests.conformance.cases import CASES_BY_ID
from tests.conformance.harness import Comparison, Outcome, outcome_dict
from tests.conformance.table import feature_table, main


def _outcome(name: str, weights: str, *, ok: bool) -> Outcome:
    o = Outcome(name, weights, "cpu")
    c = Comparison(0.0 if ok else 0.5, 0 if ok else 7, 64, ok)
    o.vs_test = {"out0": c}
    o.vs_core = {"out0": c}
    return o


def test_feature_rows_aggregate_runs_and_state_what_core_cannot_run(tmp_path, capsys) -> None:
    halo, binarize = CASES_BY_ID["parameterized_halo"], CASES_BY_ID["fixed_zero_mean_unit_variance"]
    results = [  # in the order of CASES, as --from-json sorts them
        (binarize, _outcome(binarize.id, "onnx", ok=True)),
        (halo, _outcome(halo.id, "onnx", ok=True)),
        (halo, _outcome(halo.id, "torchscript", ok=False)),
    ]
    table = feature_table(results)
    row = next(ln for ln in table.splitlines() if ln.startswith("| min + step size |"))
    assert "**no** (1/2 runs; e.g. parameterized_halo [torchscript]: out0: max abs diff 0.5, 7/64" in row
    row = next(ln for ln in table.splitlines() if ln.startswith("| binarize per channel"))
    assert (
        "core cannot run it: bioimageio.core 0.11's binarize ignores `axis`" in row
        and "yes (1/1 runs)" in row
    )
    assert (
        "| weights: onnx | fixed_zero_mean_unit_variance, parameterized_halo | yes (1/1 runs) | yes (2/2"
        in table
    )

    saved = tmp_path / "r.json"
    saved.write_text(json.dumps([outcome_dict(o) for _, o in results]))
    main(["--from-json", str(saved)])
    assert capsys.readouterr().out.startswith(table)

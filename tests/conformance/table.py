"""Run the conformance matrix and print the feature table of docs/COMPATIBILITY.md (results of real runs).

    python -m tests.conformance.table [--weights onnx,torchscript,pytorch_state_dict] [--device cpu]
                                      [--cases ID,ID] [--extra "--tile whole"] [--json results.json]

Every case is generated, predicted with ``runner predict`` through the CLI and by bioimageio.core, and
compared with its test output (see :mod:`tests.conformance.harness`); the vendored ``unet2d_nuclei_broad``
is run too. Prints one row per rdf feature (the cases covering it and whether every run matched), then one
row per run.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from tests.conformance.build import build
from tests.conformance.cases import CASES, CASES_BY_ID, WEIGHT_FORMATS, Case
from tests.conformance.expectations import ZOO_PACKAGE
from tests.conformance.harness import Comparison, Outcome, outcome_dict, run_package

ZOO_FEATURES = ("third-party package unet2d_nuclei_broad (fixed 512x512, halo 32, format 0.5)",)
ZOO_WEIGHTS = ("onnx", "torchscript")


def run_matrix(
    cases: list[Case],
    weights: list[str],
    device: str,
    root: Path,
    *,
    zoo: bool = True,
    extra: tuple[str, ...] = (),
) -> list[tuple[Case | None, Outcome]]:
    """Every case x weight format (and the zoo package); ``(case, outcome)`` pairs, case None for the zoo."""
    results: list[tuple[Case | None, Outcome]] = []
    for case in cases:
        built = build(case, root / case.id / "package")
        for w in weights:
            outcome = run_package(
                built.folder,
                root / case.id / w,
                name=case.id,
                weights=w,
                device=device,
                with_core=case.core_cannot is None,
                sequential=case.running_stats,
                extra=extra,
            )
            print(("ok   " if outcome.runner_ok else "FAIL ") + outcome.summary(), flush=True)
            results.append((case, outcome))
    if zoo:
        for w in (x for x in ZOO_WEIGHTS if x in weights):
            outcome = run_package(
                ZOO_PACKAGE / "rdf.yaml",
                root / "zoo" / w,
                name="unet2d_nuclei_broad",
                weights=w,
                device=device,
                extra=extra,
            )
            print(("ok   " if outcome.runner_ok else "FAIL ") + outcome.summary(), flush=True)
            results.append((None, outcome))
    return results


def _verdict(runs: list[tuple[Case | None, Outcome]], *, core: bool) -> str:
    if core:
        cannot = [c for c, _ in runs if c is not None and c.core_cannot]
        runs = [(c, o) for c, o in runs if c is None or not c.core_cannot]
        if not runs:
            return f"core cannot run it: {cannot[0].core_cannot}" if cannot else "-"
    bad = []
    for _, o in runs:
        ok = o.core_ok if core else o.runner_ok
        if not ok:
            comps = o.vs_core if core else o.vs_test
            err = o.runner_error or (o.core_error if core else None)
            detail = err or "; ".join(f"{k}: {c.describe()}" for k, c in comps.items() if not c.ok)
            bad.append(f"{o.name} [{o.weights}]: {detail}"[:160].replace("|", "/"))
    n = len(runs)
    if not bad:
        return f"yes ({n}/{n} runs)"
    return f"**no** ({n - len(bad)}/{n} runs; e.g. {bad[0]})"


def _weights_rows(results: list[tuple[Case | None, Outcome]]) -> dict[str, list[tuple[Case | None, Outcome]]]:
    rows: dict[str, list[tuple[Case | None, Outcome]]] = {}
    for case, o in results:
        rows.setdefault(f"weights: {o.weights}", []).append((case, o))
        fmt = "format 0.5" if case is None or case.fmt == "0.5" else None
        if fmt:
            rows.setdefault(fmt, []).append((case, o))
    return rows


def feature_table(results: list[tuple[Case | None, Outcome]]) -> str:
    """Markdown: rdf feature | covered by case | runner == core | runner == test output."""
    features: dict[str, list[tuple[Case | None, Outcome]]] = {}
    for case, outcome in results:
        for f in case.features if case is not None else ZOO_FEATURES:
            features.setdefault(f, []).append((case, outcome))
    lines = [
        "| rdf feature | covered by case | runner == core | runner == test output |",
        "|---|---|---|---|",
    ]
    features.update(_weights_rows(results))
    for f, runs in features.items():
        names = ", ".join(dict.fromkeys(o.name for _, o in runs))
        if len(names) > 80:
            names = f"{len(dict.fromkeys(o.name for _, o in runs))} cases"
        lines.append(f"| {f} | {names} | {_verdict(runs, core=True)} | {_verdict(runs, core=False)} |")
    return "\n".join(lines)


def run_table(results: list[tuple[Case | None, Outcome]]) -> str:
    """Markdown: one row per case and weight format with the worst differences."""
    lines = ["| case | weights | device | runner vs core | runner vs test output |", "|---|---|---|---|---|"]
    for case, o in results:
        if o.runner_error:
            core = test = f"runner failed: {o.runner_error}".replace("|", "/")
        else:
            test = "; ".join(f"{k}: {c.describe()}{'' if c.ok else ' (FAIL)'}" for k, c in o.vs_test.items())
            if case is not None and case.core_cannot:
                core = "core cannot run it"
            elif o.core_error:
                core = f"core failed: {o.core_error}".replace("|", "/")
            else:
                core = "; ".join(
                    f"{k}: {c.describe()}{'' if c.ok else ' (FAIL)'}" for k, c in o.vs_core.items()
                )
        lines.append(f"| {o.name} | {o.weights} | {o.device} | {core} | {test} |")
    return "\n".join(lines)


def _from_dict(d: dict) -> tuple[Case | None, Outcome]:
    o = Outcome(d["name"], d["weights"], d["device"], d["runner_error"], d["core_error"])
    o.vs_core = {k: Comparison(**c) for k, c in d["vs_core"].items()}
    o.vs_test = {k: Comparison(**c) for k, c in d["vs_test"].items()}
    return CASES_BY_ID.get(d["name"]), o


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default=",".join(WEIGHT_FORMATS))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--cases", default="", help="comma-separated case ids (default: all)")
    parser.add_argument("--no-zoo", action="store_true", help="skip unet2d_nuclei_broad")
    parser.add_argument("--extra", default="", help="more runner predict options, e.g. '--tile whole'")
    parser.add_argument("--json", type=Path, default=None, help="also write the outcomes as JSON")
    parser.add_argument(
        "--from-json", type=Path, nargs="+", default=None, help="print the tables of --json file(s), merged"
    )
    args = parser.parse_args(argv)
    wanted = set(filter(None, args.cases.split(",")))
    cases = [c for c in CASES if not wanted or c.id in wanted]
    if args.from_json:
        order = {c.id: i for i, c in enumerate(CASES)}
        loaded = [_from_dict(d) for f in args.from_json for d in json.loads(f.read_text())]
        results = sorted(loaded, key=lambda r: order.get(r[1].name, len(order)))  # stable: weights order kept
        print(feature_table(results))
        print()
        print(run_table(results))
        return
    with tempfile.TemporaryDirectory(prefix="runner-conformance-") as tmp:
        results = run_matrix(
            cases,
            args.weights.split(","),
            args.device,
            Path(tmp),
            zoo=not args.no_zoo,
            extra=tuple(args.extra.split()),
        )
    if args.json:
        args.json.write_text(json.dumps([outcome_dict(o) for _, o in results], indent=1, default=float))
    print()
    print(feature_table(results))
    print()
    print(run_table(results))


if __name__ == "__main__":
    main()

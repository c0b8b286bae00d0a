"""``runner test``: test a bioimage.io model package offline (bioimageio.core's test + bmz-runner's own)."""

from __future__ import annotations

from pathlib import Path

import typer

from runner.cli._app import command


@command("test")
def test_cmd(
    package: Path = typer.Argument(..., help="Model package: .zip, folder or rdf.yaml."),
    weights: str = typer.Option(
        None, "--weights", help="Formats to test, comma-separated (default: every format in the package)."
    ),
    trust_code: bool = typer.Option(
        False, "--trust-code", help="Also test pytorch_state_dict weights (runs the package's Python code)."
    ),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda or cuda:N."),
    only: str = typer.Option(None, "--only", help="Run only one of the two tests: bioimageio or runner."),
) -> None:
    """Test a model package offline with bioimageio.core and with runner predict.

    bioimageio.core reproduces the test outputs and runs parameterized sizes; `runner predict` reproduces
    the test outputs too. Exit code 0 when everything passed, 1 when a test failed, 2 for bad input.

    Example: runner test bcd_nuclei.zip --trust-code
    """
    from exporters.checks import check_package
    from runner.errors import UserError

    if only not in (None, "bioimageio", "runner"):
        raise UserError(f"--only must be bioimageio or runner, got {only!r}")
    formats = None
    if weights:
        formats = [w.strip() for w in weights.split(",") if w.strip()]
        formats = ["pytorch_state_dict" if w == "state_dict" else w for w in formats]
    report = check_package(
        package,
        weights=formats,
        trust_code=trust_code,
        device=device,
        bioimageio=only in (None, "bioimageio"),
        ours=only in (None, "runner"),
    )
    typer.echo(report.format())
    raise typer.Exit(0 if report.passed else 1)

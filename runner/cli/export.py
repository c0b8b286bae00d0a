"""``runner export``: a trained run -> a bioimage.io model package, validated before it is written."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, cast

import typer

from runner.cli._app import command


@command("export")
def export_cmd(
    run: Path = typer.Argument(..., help="Run folder of `runner train` (or a checkpoint .pt file)."),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Package to write: PATH.zip, or a folder for any other name."
    ),
    weights: str = typer.Option(
        "torchscript,onnx,state_dict",
        "--weights",
        help="Weight formats, comma-separated: torchscript, onnx, state_dict.",
    ),
    name: str = typer.Option(
        None, "--name", help="Model name shown by bioimage.io tools (default: recipe name)."
    ),
    checkpoint: str = typer.Option("best", "--checkpoint", help="best (else last) or last."),
    data: Path = typer.Option(
        None, "--data", help="Where the run's dataset folder lives now (default: its training-time path)."
    ),
    opset: int = typer.Option(17, "--opset", min=7, max=18, help="ONNX opset (deepImageJ reads up to 18)."),
    max_val_images: int = typer.Option(
        None, "--max-val-images", min=1, help="Score at most this many validation images for the README."
    ),
    rtol: float = typer.Option(1e-3, "--rtol", min=0.0, help="Reproducibility: relative tolerance."),
    atol: float = typer.Option(1e-3, "--atol", min=0.0, help="Reproducibility: absolute tolerance."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing package at --out."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars."),
) -> None:
    """Export a trained run as a bioimage.io package (TorchScript, ONNX, state dict; rdf 0.5.4).

    The package is tested offline with bioimageio.core and with `runner predict` before it is written;
    if a test fails, nothing is written and the report says why (exit code 2).

    Example: runner export runs/bcd --out bcd_nuclei.zip --weights torchscript,onnx,state_dict
    """
    from exporters.build import PackageInvalid, export_package
    from exporters.options import ExportOptions
    from exporters.weights import parse_formats
    from runner.errors import UserError

    if checkpoint not in ("best", "last"):
        raise UserError(f"--checkpoint must be best or last, got {checkpoint!r}")
    try:
        options = ExportOptions(name=name)
    except ValueError as exc:
        msg = exc.errors()[0]["msg"] if hasattr(exc, "errors") else str(exc)
        raise UserError(f"--name: {msg.removeprefix('Value error, ')}") from None
    options = ExportOptions(
        weights=parse_formats(weights),
        name=name,
        checkpoint=cast('Literal["best", "last"]', checkpoint),  # checked above
        data_dir=data,
        opset=opset,
        max_validation_images=max_val_images,
        relative_tolerance=rtol,
        absolute_tolerance=atol,
        overwrite=overwrite,
        progress=progress,
    )
    try:
        result = export_package(run, out, options)
    except PackageInvalid as exc:
        typer.echo(exc.report.format(), err=True)
        raise
    checks = result.report.checks
    passed = sum(c.passed for c in checks)
    acc = result.validation.get("accuracy@0.5")
    typer.echo(
        f"wrote {result.path} ({result.name}; weights {', '.join(result.weights)}); "
        f"{passed}/{len(checks)} checks passed"
        + (f"; validation accuracy@0.5 {acc:.4f}" if acc is not None and acc == acc else "")
    )

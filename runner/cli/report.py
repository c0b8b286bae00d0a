"""``runner report``: one self-contained HTML page of a results folder, to open in a browser or mail."""

from __future__ import annotations

from pathlib import Path

import typer

from runner.cli._app import command


@command("report")
def report_cmd(
    results: Path = typer.Argument(
        ..., help="Results folder written by runner predict --output (or evaluate)."
    ),
    out: Path = typer.Option(None, "--out", "-o", help="HTML file to write (default: RESULTS/report.html)."),
    images: Path = typer.Option(
        None, "--images", help="Folder of the input images, when run_config.json does not point at them."
    ),
    gt: Path = typer.Option(
        None, "--gt", help="Ground-truth label folder for overlays coloured by match (default: the run's)."
    ),
    max_mb: float = typer.Option(
        10.0, "--max-mb", min=0.5, help="Size budget of the page in MB; full-size pictures shrink to fit."
    ),
    title: str = typer.Option(None, "--title", help="Page title (default: from the folder name)."),
) -> None:
    """Write an HTML report: settings and package, metrics (sortable table, accuracy against IoU), overlays
    worst image first (matched / false positive / missed), measurement histograms, z slices of 3D images.
    Pictures are embedded: the file opens anywhere without a server or network.

    Example: runner report out/ --out out/report.html
    """
    from runner.report import write_report

    info = write_report(results, out, images=images, gt=gt, max_mb=max_mb, title=title)
    extra = "" if info.has_metrics else " (no summary.json: no metrics)"
    typer.echo(f"report of {info.n_images} image(s), {info.n_bytes / 1e6:.2f} MB -> {info.path}{extra}")

"""``runner predict``: run a bioimage.io model package over images, then its instance post-processor."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import typer

from runner.cli._app import STATE, command
from runner.inference.options import InferenceOptions, help_of


def _help(name: str) -> str:
    return help_of(InferenceOptions, name)


@command("predict")
def predict_cmd(
    model: Path = typer.Argument(
        ..., help="Model package: .zip, folder or rdf.yaml/bioimageio.yaml (0.4 or 0.5)."
    ),
    inputs: list[str] = typer.Option(
        None,
        "--input",
        "-i",
        help="Images: a file, a folder or a glob; for models "
        "with several inputs NAME=PATH once per input (matched by file name).",
    ),
    output: Path = typer.Option(
        None,
        "--output",
        "-o",
        help="Output folder (created): instances/, probabilities/, measurements/, run_config.json.",
    ),
    device: str = typer.Option("auto", "--device", help=_help("device")),
    weights: str = typer.Option(None, "--weights", help=_help("weights")),
    trust_code: bool = typer.Option(False, "--trust-code", help=_help("trust_code")),
    tile: str = typer.Option(None, "--tile", help=_help("tile") + " E.g. 512 or 256,512."),
    batch_size: int = typer.Option(None, "--batch-size", min=1, help=_help("batch_size")),
    memory_mb: float = typer.Option(None, "--memory-mb", min=1, help=_help("memory_mb")),
    halo: str = typer.Option(None, "--halo", help=_help("halo") + " E.g. 32 or 8,32,32."),
    border: str = typer.Option("image", "--border", help=_help("border")),
    threads: int = typer.Option(None, "--threads", min=1, help=_help("threads")),
    postprocess: str = typer.Option(
        None,
        "--postprocess",
        "-m",
        help="Instance post-processor (default: the "
        "package's config.runner.postprocessing; see `runner postprocess --list`).",
    ),
    param: list[str] = typer.Option(
        None, "--param", "-p", help="Post-processor param key=value, repeatable."
    ),
    filters: list[str] = typer.Option(
        None, "--filter", "-f", help="Label filter NAME:key=value, repeatable."
    ),
    no_postprocess: bool = typer.Option(False, "--no-postprocess", help="Write only the raw model outputs."),
    output_tensor: str = typer.Option(
        None, "--output-tensor", help="Output that feeds the post-processor (default: the first)."
    ),
    save_probabilities: bool = typer.Option(
        False, "--save-probabilities", help="Also write raw outputs to probabilities/."
    ),
    measure: bool = typer.Option(
        False, "--measure", help="Write per-object measurements to measurements/*.csv."
    ),
    overlays: bool = typer.Option(
        False, "--overlays", help="Write overlays/<name>.png: image | outlines (coloured by match with --gt)."
    ),
    tta: bool = typer.Option(None, "--tta/--no-tta", help=_help("tta")),
    gt: Path = typer.Option(
        None, "--gt", help="Ground-truth label folder: also evaluate (metrics.csv, summary.json)."
    ),
    axes: str = typer.Option(
        None, "--axes", help="Axes of the input files when metadata is missing, e.g. zyx, yxc."
    ),
    resolution: str = typer.Option(
        None, "--resolution", help="Pixel spacing (z,)y,x, e.g. 2,0.5,0.5 (default: from file metadata)."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
    report: bool = typer.Option(
        False,
        "--report",
        help="Also write OUT/report.html: settings, metrics, overlays worst first (see `runner report`).",
    ),
    cluster: str = typer.Option(
        None,
        "--cluster",
        help="Run on Dask: local:N (N worker processes here) or a scheduler address tcp://host:port. "
        "Zarr/OME-Zarr inputs are always run block by block (default local:1); image folders are spread "
        "over the workers.",
    ),
    block: str = typer.Option(
        None,
        "--block",
        help="Zarr inputs: block (core) size (z,)y,x (default 2048 in 2D, 128 in 3D; >= twice the halo).",
    ),
    object_size: int = typer.Option(
        None,
        "--object-size",
        min=1,
        help="Zarr inputs: largest object diameter in pixels; the block halo is the network's halo plus "
        "this (default: from the post-processor's max_size, else 64).",
    ),
    skip_below: str = typer.Option(
        "auto",
        "--skip-below",
        help="Zarr inputs: blocks whose region on the coarsest pyramid level is at most this value are "
        "background and skipped; auto: the coarsest level's minimum; none: never skip.",
    ),
    worker_memory: str = typer.Option(
        None, "--worker-memory", help="Memory limit per local Dask worker, e.g. 4GiB (default: auto)."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing zarr output."),
) -> None:
    """Predict images with any bioimage.io model package: tiled inference on CPU or GPU, the rdf's
    pre/post-processing, then the instance post-processor.

    Example: runner predict model.zip --input images/ --output out/

    Example: runner predict unet2d_nuclei_broad/ -i images/ -o out/ --postprocess fg_watershed --gt labels/

    Example: runner predict model.zip -i big.ome.zarr -o out.ome.zarr --cluster local:2 --block 128
    """
    from loguru import logger

    from runner.errors import BatchError, UserError
    from runner.inference.batch import PredictBatchError, PredictOptions, predict_files
    from runner.parsing import parse_floats, parse_ints, parse_params

    logger.disable("bioimageio")
    if not inputs or output is None:
        raise UserError(
            "missing " + " and ".join(n for n, v in (("--input", inputs), ("--output", output)) if not v),
            hint="e.g. runner predict model.zip --input images/ --output out/",
        )
    tile_text = tile.strip().lower() if tile else ""
    tile_value: list[int] | Literal["whole"] | None = None
    if tile_text == "whole":
        tile_value = "whole"
    elif tile_text:
        tile_value = list(parse_ints(tile_text, name="--tile", length=(1, 2, 3)) or ())
    options = PredictOptions(
        device=device,
        weights=weights,
        trust_code=trust_code,
        tile=tile_value,
        batch_size=batch_size,
        memory_mb=memory_mb,
        halo=_ints(halo, parse_ints),
        border=_border(border),
        threads=threads,
        postprocess=postprocess,
        params=parse_params(param),
        filters=list(filters or []),
        no_postprocess=no_postprocess,
        output_tensor=output_tensor,
        save_probabilities=save_probabilities,
        tta=tta,
        overlays=overlays,
        measure=measure,
        axes=axes,
        resolution=_floats(resolution, parse_floats),
        progress=not quiet,
    )
    from runner.cli._distributed import DistributedArgs, predict_distributed

    args = DistributedArgs(cluster, block, object_size, skip_below, worker_memory, overwrite, report)
    if predict_distributed(model, list(inputs), output, options, args, gt=gt):
        if report:  # image folders only: zarr volumes refuse --report
            _write_html(output)
        return
    try:
        result = predict_files(model, list(inputs), output, options=options, gt=gt)
    except BatchError as exc:
        if isinstance(exc, PredictBatchError):
            _echo_report(exc.report, output)
            if report and exc.report.done:
                _write_html(output)
            if STATE["debug"]:
                for name, text in exc.report.tracebacks.items():
                    typer.echo(f"--- {name}\n{text}", err=True)
        raise
    _echo_report(result, output)
    if report:
        _write_html(output)


def _write_html(output: Path) -> None:
    from runner.report import write_report

    info = write_report(output)
    typer.echo(f"report ({info.n_bytes / 1e6:.2f} MB) -> {info.path}")


def _echo_report(report, output: Path) -> None:
    typer.echo(
        f"predicted {len(report.done)} image(s) with {report.weight_format} weights on {report.device} "
        f"in {report.seconds:.1f} s -> {output}"
    )
    for line in report.modes():
        typer.echo(f"ran as {line}")
    for note in report.notes:
        typer.echo(f"note: {note}")
    if report.summary:
        typer.echo(summary_line(report.summary))


def _border(text: str):
    from runner.errors import UserError
    from runner.inference.options import BORDER_HELP

    value = (text or "image").strip().lower()
    if value not in BORDER_HELP:
        raise UserError(
            f"--border must be one of {', '.join(BORDER_HELP)}, got {text!r}",
            hint="; ".join(f"{k}: {v}" for k, v in BORDER_HELP.items()),
        )
    return value


def _ints(text, parse_ints):
    values = parse_ints(text, name="--halo", length=(1, 2, 3))
    return None if values is None else list(values)


def _floats(text, parse_floats):
    values = parse_floats(text, name="--resolution", length=(2, 3))
    return None if values is None else list(values)


def summary_line(summary: dict) -> str:
    pooled = summary.get("pooled", {})
    rows = pooled.get("per_threshold", [])
    best = next((r for r in rows if abs(r.get("iou", 0) - 0.5) < 1e-9), rows[0] if rows else None)
    if best is None:
        return "metrics: see summary.json"
    return (
        f"metrics ({summary.get('n_images')} image(s), pooled): "
        f"accuracy@{best['iou']:g} {best['accuracy']:.4f}, "
        f"F1 {best['f1']:.4f}, avAP50-95 {pooled.get('av_ap_50_95_05', float('nan')):.4f}, "
        f"AJI {pooled.get('aji', float('nan')):.4f}; summary.json written"
    )

"""``runner predict`` on Dask: zarr volumes block by block, image folders spread over workers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import typer

from runner.errors import UserError


@dataclass
class DistributedArgs:
    """The ``--cluster``/zarr options of ``runner predict`` as given on the command line."""

    cluster: str | None
    block: str | None
    object_size: int | None
    skip_below: str | None
    worker_memory: str | None
    overwrite: bool
    report: bool = False


def predict_distributed(
    model: Path, inputs: list[str], output: Path, options, args: DistributedArgs, *, gt
) -> bool:
    """Run the distributed path when the input is a zarr volume or ``--cluster`` is given; False otherwise."""
    from runner.io.ome_zarr import is_zarr

    volume = len(inputs) == 1 and is_zarr(inputs[0])
    if not volume and args.cluster is None:
        _refuse_volume_options(args)
        return False
    if args.cluster is not None:
        from runner.distributed.cluster import parse_cluster

        parse_cluster(args.cluster)  # a bad spec fails before anything is read
    if volume:
        _predict_volume(model, inputs[0], output, options, args, gt=gt)
    else:
        _predict_images(model, inputs, output, options, args, gt=gt)
    return True


def _refuse_volume_options(args: DistributedArgs) -> None:
    given = [n for n, v in (("--block", args.block), ("--object-size", args.object_size)) if v is not None]
    if given:
        raise UserError(
            f"{', '.join(given)} apply to zarr inputs only", hint="drop them or give a .zarr input"
        )


def _predict_volume(model: Path, source: str, output: Path, options, args: DistributedArgs, *, gt) -> None:
    from runner.distributed.volume import predict_volume
    from runner.parsing import parse_floats, parse_ints

    if gt is not None:
        raise UserError("--gt is for image folders; evaluate a zarr result with runner evaluate", path=gt)
    unsupported = [
        name
        for name, on in (
            ("--save-probabilities", options.save_probabilities),
            ("--measure", options.measure),
            ("--overlays", options.overlays),
            ("--no-postprocess", options.no_postprocess),
            ("--report", args.report),
        )
        if on
    ]
    if unsupported:
        raise UserError(f"{', '.join(unsupported)} not available for zarr inputs", hint="drop them")
    block = parse_ints(args.block, name="--block", length=(1, 2, 3))
    skip: float | str | None = (args.skip_below or "auto").strip().lower()
    if skip == "none":
        skip = None
    elif skip != "auto":
        value = parse_floats(str(skip), name="--skip-below", length=(1,))
        skip = None if value is None else value[0]
    report = predict_volume(
        model,
        source,
        output,
        options=options,
        cluster=args.cluster or "local:1",
        block=block,
        object_size=args.object_size,
        skip_below=skip,
        overwrite=args.overwrite,
        memory_limit=args.worker_memory,
    )
    typer.echo(
        f"segmented {report.n_blocks} block(s) of {','.join(map(str, report.block))} (halo "
        f"{','.join(map(str, report.halo))}; {report.n_skipped} empty, skipped): {report.n_objects} objects "
        f"in {report.seconds:.1f} s -> {report.output}"
        + (f"; peak worker memory {max(report.peak_mib.values()):.0f} MiB" if report.peak_mib else "")
    )


def _predict_images(
    model: Path, inputs: list[str], output: Path, options, args: DistributedArgs, *, gt
) -> None:
    from runner.distributed.images import predict_images

    _refuse_volume_options(args)
    assert args.cluster is not None, "images are spread over a cluster only with --cluster"
    report = predict_images(
        model, inputs, output, options=options, gt=gt, cluster=args.cluster, memory_limit=args.worker_memory
    )
    typer.echo(
        f"predicted {len(report.done)} image(s) ({report.resumed} already done) on {report.cluster} "
        f"in {report.seconds:.1f} s -> {output}"
    )
    if report.summary:
        from runner.cli.predict import summary_line

        typer.echo(summary_line(report.summary))

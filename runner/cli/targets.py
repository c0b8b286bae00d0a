"""``runner targets``: instance labels -> target-channel TIFFs and preview PNGs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, cast

import typer

from runner.cli._app import command
from runner.parsing import parse_floats, parse_ints

if TYPE_CHECKING:
    from runner.targets.codes import ContourMode, DistanceNorm


@command("targets")
def targets_cmd(
    data_dir: Path = typer.Argument(
        ..., help="Dataset folder: <split>/x + <split>/y, or one split with x/ and y/."
    ),
    code: str = typer.Option(
        "BCD",
        "--code",
        "-c",
        help="Target code: B C D M P Dv2 BC BP BD BCM BCD BCDv2 BDv2 (PPP for PatchPerPix patches).",
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (created; split sub-folders mirrored)."),
    contour_width: int = typer.Option(1, help="Contour band width in pixels."),
    contour_mode: str = typer.Option("inner", help="inner | thick | outer."),
    distance_norm: str = typer.Option("instance", help="D scaling: instance | image | none."),
    point_radius: float = typer.Option(3.0, help="Radius of the centre disk/ball (P)."),
    resolution: str = typer.Option(None, help="Pixel spacing '(z,)y,x', e.g. 2,0.5,0.5 for anisotropic 3D."),
    patch: str = typer.Option(None, help="PPP patch shape, e.g. 25,25 or 9,9,9."),
    ga: bool = typer.Option(False, "--ga", help="Also write GAInS gradient-anomaly loss weights (weights/)."),
    ga_window: int = typer.Option(8, help="Gradient-anomaly sliding window size."),
    ga_factor: float = typer.Option(0.8, help="Gradient-anomaly weight factor."),
    overlap_highlight: float = typer.Option(0.1, help="Extra weight on overlapping pixels."),
    overlapping: bool = typer.Option(
        False, "--overlapping", help="Label files are overlapping stacks (N,(Z,)Y,X), one object per plane."
    ),
    axes: str = typer.Option(
        None, "--axes", help="Axes of the images when metadata is missing, e.g. zyx, yxc."
    ),
    preview: bool = typer.Option(True, "--preview/--no-preview", help="Write a PNG preview per image."),
) -> None:
    """Turn instance labels into the target channels a model learns.

    Example: runner targets data/dsb2018 --code BCD --out targets/
    """
    from runner.targets import GradientAnomalyOptions, TargetOptions, write_targets

    options = TargetOptions(
        contour_width=contour_width,
        # plain strings from the command line; pydantic checks them against the allowed values
        contour_mode=cast("ContourMode", contour_mode),
        distance_norm=cast("DistanceNorm", distance_norm),
        point_radius=point_radius,
        resolution=parse_floats(resolution, name="--resolution", length=(2, 3)),
        patch=parse_ints(patch, name="--patch", length=(2, 3)),
    )
    ga_options = GradientAnomalyOptions(
        window_size=ga_window, ga_factor=ga_factor, overlap_highlight=overlap_highlight
    )
    written = write_targets(
        data_dir,
        out,
        code=code,
        options=options,
        gradient_anomaly=ga_options if ga else None,
        overlapping=overlapping,
        axes=axes,
        preview=preview,
    )
    typer.echo(f"wrote {written.n_images} target image(s) with channels {written.channels} to {out}")

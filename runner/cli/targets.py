"""``runner targets``: instance labels -> target-channel TIFFs and preview PNGs."""

from __future__ import annotations

import json
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
    from tqdm import tqdm

    from runner.io import find_pairs, find_splits, read_image, staged_dir, write_text_atomic, write_tiff
    from runner.targets import GradientAnomalyOptions, TargetOptions, channel_specs, get_code
    from runner.targets.io_helpers import read_target_labels, write_preview

    target = get_code(code)
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
    from runner.safety import check_output_dir, check_shape

    check_output_dir(out)
    splits = {name: find_pairs(path) for name, path in find_splits(data_dir).items()}
    specs = channel_specs(code, options)
    total = sum(len(p) for p in splits.values())
    with staged_dir(out) as stage:
        with tqdm(total=total, desc=f"targets {code}", unit="img") as bar:
            for split, pairs in splits.items():
                folder = stage / split if split else stage
                folder.mkdir(parents=True, exist_ok=True)
                for pair in pairs:
                    image = read_image(pair.image, axes=axes)
                    check_shape(
                        (len(specs) + 2, *image.data.shape[1:]),
                        what=f"the {len(specs)} target channels of the image",
                        path=pair.image,
                    )
                    labels = read_target_labels(pair.labels, image, overlapping=overlapping)
                    channels = target.build(labels, options, overlapping=overlapping)
                    axes_out = "czyx" if channels.ndim == 4 else "cyx"
                    write_tiff(
                        folder / f"{pair.name}.tif", channels, axes=axes_out, resolution=options.resolution
                    )
                    weights = None
                    if ga:
                        from runner.targets import gradient_anomaly_weights

                        weights = gradient_anomaly_weights(labels, ga_options, overlapping=overlapping)
                        (folder / "weights").mkdir(exist_ok=True)
                        write_tiff(
                            folder / "weights" / f"{pair.name}.tif", weights, axes="zyx"[-weights.ndim :]
                        )
                    if preview:
                        (folder / "preview").mkdir(exist_ok=True)
                        write_preview(
                            folder / "preview" / f"{pair.name}.png",
                            image.data,
                            labels,
                            channels,
                            specs,
                            weights=weights,
                            overlapping=overlapping,
                        )
                    bar.update(1)
        meta = {
            "code": code,
            "channels": [
                {"index": i, "name": s.name, "kind": s.kind, "description": s.description}
                for i, s in enumerate(specs)
            ],
            "options": options.model_dump(mode="json"),
            "gradient_anomaly": ga_options.model_dump() if ga else None,
            "n_images": total,
        }
        write_text_atomic(stage / "targets.json", json.dumps(meta, indent=2))
    typer.echo(f"wrote {total} target image(s) with channels {[s.name for s in specs]} to {out}")

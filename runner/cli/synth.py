"""``runner synth``: write a synthetic dataset of touching blobs (2D) or nuclei (3D) with exact labels."""

from __future__ import annotations

from pathlib import Path

import typer

from runner.cli._app import command
from runner.parsing import parse_floats, parse_ints


@command("synth")
def synth_cmd(
    out: Path = typer.Argument(..., help="Output dataset folder (train/ and val/ with x/ and y/)."),
    ndim: int = typer.Option(2, "--ndim", min=2, max=3, help="2 or 3 spatial dimensions."),
    n_train: int = typer.Option(8, min=1, help="Training images."),
    n_val: int = typer.Option(2, min=0, help="Validation images."),
    shape: str = typer.Option(None, help="Image shape, e.g. 128,128 or 48,96,96."),
    n_objects: int = typer.Option(None, min=1, help="Objects per image."),
    radius: str = typer.Option(None, help="Object radius range in pixels, e.g. 6,10."),
    seed: int = typer.Option(0, help="Random seed."),
) -> None:
    """Make a synthetic dataset with known instance labels.

    Example: runner synth data/nuclei3d --ndim 3 --n-train 40 --n-val 8
    """
    from runner.errors import UserError
    from runner.io import staged_dir
    from runner.safety import check_output_dir, check_shape
    from runner.synthetic import make_dataset

    shape_t = parse_ints(shape, name="--shape", length=(ndim,))
    radius_t = parse_floats(radius, name="--radius", length=(2,))
    _check_geometry(shape_t, radius_t)
    # labels, image, distance maps and their index arrays of one image: about 48 bytes per pixel
    check_shape(
        shape_t or ((128, 128) if ndim == 2 else (48, 96, 96)), itemsize=48, what="one image", path=out
    )
    check_output_dir(out)
    if out.exists() and any(out.iterdir()):
        raise UserError("output folder exists and is not empty", path=out, hint="choose a new folder")
    with staged_dir(out) as stage:
        make_dataset(
            stage,
            ndim=ndim,
            n_train=n_train,
            n_val=n_val,
            shape=shape_t,
            n_objects=n_objects,
            radius=None if radius_t is None else (radius_t[0], radius_t[1]),
            seed=seed,
        )
    typer.echo(f"wrote {n_train} training and {n_val} validation {ndim}D images to {out}")


def _check_geometry(shape: tuple[int, ...] | None, radius: tuple[float, ...] | None) -> None:
    """--shape: whole numbers >= 8; --radius: 0 < min <= max, objects smaller than the image."""
    import math

    from runner.errors import UserError

    if shape is not None and min(shape) < 8:
        raise UserError(
            f"--shape must be at least 8 pixels per axis, got {','.join(map(str, shape))}",
            hint="e.g. --shape 128,128 or 48,96,96",
        )
    if radius is None:
        return
    lo, hi = radius
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo <= 0 or hi < lo:
        raise UserError(
            f"--radius takes MIN,MAX with 0 < MIN <= MAX, got {lo:g},{hi:g}", hint="e.g. --radius 6,10"
        )
    if shape is not None and 2 * hi >= min(shape):
        raise UserError(
            f"--radius {hi:g} is too large for --shape {','.join(map(str, shape))}: objects must fit",
            hint="use a radius below half the smallest side",
        )

"""``runner synth``: write a synthetic dataset of touching blobs (2D) or nuclei (3D) with exact labels."""

from __future__ import annotations

from pathlib import Path

import typer

from runner.cli._app import command
from runner.cli._parse import parse_floats, parse_ints


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
    from runner.synthetic import make_dataset

    shape_t = parse_ints(shape, name="--shape", length=(ndim,))
    radius_t = parse_floats(radius, name="--radius", length=(2,))
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

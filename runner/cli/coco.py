"""``runner coco-to-labels``: COCO JSON instance annotations -> label TIFFs (or overlapping stacks)."""

from __future__ import annotations

from pathlib import Path

import typer

from runner.cli._app import command


@command("coco-to-labels")
def coco_to_labels_cmd(
    annotations: Path = typer.Argument(..., help="COCO instances JSON (polygons or RLE)."),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Folder for the label TIFFs (one per annotated image)."
    ),
    stack: bool = typer.Option(
        False,
        "--stack",
        help="Write overlapping stacks (N,Y,X), one object per plane, "
        "instead of label images (where objects overlap, the smaller stays on top).",
    ),
    classes: bool = typer.Option(
        False, "--classes", help="Add the category of each object as a second channel."
    ),
) -> None:
    """Convert COCO instance annotations (the format GAInS data ships in) to label images.

    Example: runner coco-to-labels annotations/train.json --out data/train/y
    """
    import numpy as np

    from runner.io import staged_dir, stem, write_labels, write_tiff
    from runner.io.coco import read_coco

    images = read_coco(annotations)
    with staged_dir(out) as stage:
        for im in images:
            path = stage / f"{stem(im.file_name)}.tif"
            if stack:
                write_tiff(path, im.to_stack().astype(np.uint16), axes="zyx")
            elif classes:
                write_tiff(path, np.stack([im.to_labels(), im.to_classes()]).astype(np.uint16), axes="cyx")
            else:
                write_labels(path, im.to_labels())
    n_obj = sum(len(im.masks) for im in images)
    typer.echo(f"wrote {len(images)} label image(s) with {n_obj} object(s) to {out}")

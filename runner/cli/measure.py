"""``runner measure``: per-object measurements of label images, optionally removing objects by property."""

from __future__ import annotations

from pathlib import Path

import typer

from runner.cli._app import command
from runner.parsing import parse_floats


@command("measure")
def measure_cmd(
    labels: Path = typer.Argument(..., help="A label image or a folder of label images."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder for the CSVs (and filtered labels)."),
    image: Path = typer.Option(
        None,
        "--image",
        "-i",
        help="Intensity image (or folder of images paired by name) for mean/min/max intensity columns.",
    ),
    resolution: str = typer.Option(
        None,
        "--resolution",
        "-r",
        help="Pixel spacing (z,)y,x in physical units, "
        "e.g. 2,0.5,0.5 (default: from the file's metadata, else 1).",
    ),
    remove_if: list[str] = typer.Option(
        None,
        "--remove-if",
        help="Remove the objects for which this holds, e.g. "
        "'npixels lt 100 and circularity le 0.7'; repeat for more groups (any "
        "group that holds in full removes the object). Properties: npixels, area, "
        "volume, diameter, perimeter, surface_area, circularity, elongation, "
        "sphericity, mean_intensity; operators lt le gt ge eq ne.",
    ),
    axes: str = typer.Option(None, "--axes", help="Axes of the intensity images when metadata is missing."),
) -> None:
    """Measure every object (size, shape, position, intensity); optionally remove objects by property.

    Columns: npixels, area (2D) or volume (3D), diameter, perimeter and circularity/elongation (2D) or surface
    area and sphericity (3D), centroid, bounding box, and mean/min/max intensity with --image.

    Writes <out>/<name>.csv per label image and <out>/all_objects.csv; with --remove-if also the kept labels
    in <out>/filtered/ and the conditions in <out>/conditions.json (each CSV then says which condition groups
    held and whether the object was removed).

    Example: runner measure results/instances --image data/x --remove-if "npixels lt 100" --out measured/
    """
    import json

    from tqdm import tqdm

    from runner.errors import UserError
    from runner.io import list_images, staged_dir, stem, write_text_atomic
    from runner.io.dataset import pair_images_with_labels
    from runner.measure import PropertyTable, parse_conditions

    groups = parse_conditions(list(remove_if)) if remove_if else []
    res = parse_floats(resolution, name="--resolution", length=(2, 3))
    if labels.is_file():
        files = [labels]
    elif labels.is_dir():
        files = list_images(labels)
        if not files:
            raise UserError("no label images found", path=labels)
    else:
        raise UserError("labels not found", path=labels)
    jobs = pair_images_with_labels(files, image, labels)
    combined: list[dict] = []
    with staged_dir(out) as stage:
        for lab_path, img_path in tqdm(jobs, desc="measure", unit="img"):
            table = _measure_one(lab_path, img_path, resolution=res, axes=axes, groups=groups, stage=stage)
            table.to_csv(stage / f"{stem(lab_path)}.csv")
            combined.extend({"image": stem(lab_path), **row} for row in table.rows())
        all_table = PropertyTable.from_rows(combined)
        write_text_atomic(stage / "all_objects.csv", all_table.to_csv_text() if combined else "image,label\n")
        if groups:
            text = {f"condition_{k}": " and ".join(str(c) for c in g) for k, g in enumerate(groups, start=1)}
            write_text_atomic(stage / "conditions.json", json.dumps(text, indent=2) + "\n")
    n_removed = sum(1 for r in combined if r.get("removed"))
    extra = f", removed {n_removed}" if groups else ""
    typer.echo(f"measured {len(combined)} object(s) in {len(jobs)} image(s){extra}; wrote {out}")


def _measure_one(lab_path: Path, img_path: Path | None, *, resolution, axes, groups, stage: Path):
    """Measure one label image (and write its filtered labels when there are conditions)."""
    import numpy as np

    from runner.errors import UserError
    from runner.io import read_image, read_labels, stem, write_labels
    from runner.measure import apply_conditions, measure_labels

    img = read_image(img_path, axes=axes) if img_path is not None else None
    lab = read_labels(lab_path, spatial_shape=None if img is None else img.data.shape[1:])
    spacing = resolution or lab.info.resolution
    if spacing is not None and len(spacing) == 3 and lab.data.ndim == 2:
        spacing = spacing[1:]
    if spacing is not None and len(spacing) != lab.data.ndim:
        raise UserError(
            f"--resolution has {len(spacing)} values for a {lab.data.ndim}D label image", path=lab_path
        )
    table = measure_labels(lab.data, image=None if img is None else img.data, resolution=spacing)
    if groups:
        try:
            table = apply_conditions(table, groups, ndim=lab.data.ndim)
        except UserError as exc:
            raise UserError(str(exc), path=lab_path) from None
        kept = lab.data.copy()
        gone = table["label"][table["removed"]]
        if len(gone):
            kept[np.isin(lab.data, gone)] = 0
        (stage / "filtered").mkdir(exist_ok=True)
        write_labels(stage / "filtered" / f"{stem(lab_path)}.tif", kept, resolution=spacing)
    return table

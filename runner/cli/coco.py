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
    keep_folders: bool = typer.Option(
        False,
        "--keep-folders",
        help="Write each label image under the folders of its COCO file_name (a/x.png -> OUT/a/x.tif), "
        "for files whose base names repeat in different folders.",
    ),
) -> None:
    """Convert COCO instance annotations (the format GAInS data ships in) to label images.

    Example: runner coco-to-labels annotations/train.json --out data/train/y
    """
    import numpy as np

    from runner.io import staged_dir, write_labels, write_tiff
    from runner.io.coco import read_coco
    from runner.safety import check_output_dir

    check_output_dir(out)
    images = read_coco(annotations)
    names = _output_names([im.file_name for im in images], annotations, keep_folders=keep_folders)
    with staged_dir(out) as stage:
        for im, name in zip(images, names, strict=True):
            path = stage / name
            path.parent.mkdir(parents=True, exist_ok=True)
            if stack:
                write_tiff(path, im.to_stack().astype(np.uint16), axes="zyx")
            elif classes:
                write_tiff(path, np.stack([im.to_labels(), im.to_classes()]).astype(np.uint16), axes="cyx")
            else:
                write_labels(path, im.to_labels())
    n_obj = sum(len(im.masks) for im in images)
    typer.echo(f"wrote {len(images)} label image(s) with {n_obj} object(s) to {out}")


def _output_names(file_names: list[str], source: Path, *, keep_folders: bool) -> list[str]:
    """One relative ``.tif`` name per COCO image; a :class:`UserError` when two would be the same file."""
    from pathlib import PurePosixPath

    from runner.errors import UserError
    from runner.io import stem

    names: list[str] = []
    seen: dict[str, str] = {}
    for file_name in file_names:
        parts = [p for p in PurePosixPath(file_name.replace("\\", "/")).parts if p not in ("/", "..", ".")]
        parts = [p for p in parts if not p.endswith(":")]  # drive letters
        folders = parts[:-1] if keep_folders else []
        name = "/".join([*folders, f"{stem(parts[-1] if parts else file_name)}.tif"])
        if name in seen:
            raise UserError(
                f"images {seen[name]!r} and {file_name!r} would both be written as {name}",
                path=source,
                hint="pass --keep-folders to write one sub-folder per image folder"
                if not keep_folders
                else "give the images distinct file names",
            )
        seen[name] = file_name
        names.append(name)
    return names

"""``runner postprocess``: prediction TIFFs (or raw images) -> instance label TIFFs, with optional filters."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from runner.cli._app import command
from runner.errors import UserError

FILTER_HELP = (
    "Filter applied after the method, repeatable, in order. Syntax NAME or NAME:key=value,key=value; an item "
    "without '=' continues the previous value as a list. Examples: --filter remove_small:min_size=30 "
    "--filter fill_holes --filter voronoi:channels=0,1,threshold=0.5 "
    "--filter 'properties:remove_if=npixels lt 50 and circularity lt 0.5'. See --list."
)


@command("postprocess")
def postprocess_cmd(
    pred_dir: Path = typer.Argument(
        None,
        help="Folder of prediction TIFFs with axes c,(z,)y,x (raw images for "
        "--method classical), or one file.",
    ),
    method: str = typer.Option(None, "--method", "-m", help="Post-processor name (see --list)."),
    param: list[str] = typer.Option(
        None, "--param", "-p", help="Method param key=value, repeatable (thresholds accept 'auto' = Otsu)."
    ),
    filters: list[str] = typer.Option(None, "--filter", "-f", help=FILTER_HELP),
    resolution: str = typer.Option(
        None,
        "--resolution",
        help="Pixel spacing '(z,)y,x', e.g. 2,0.5,0.5; default: "
        "from the file metadata, else isotropic. Lengths in params use these units.",
    ),
    axes: str = typer.Option(
        None, "--axes", help="Axes of the inputs when metadata is missing, e.g. czyx, cyx, yx."
    ),
    debug_dir: Path = typer.Option(
        None, "--debug-dir", help="Also write seeds/, foreground/ and surface/ maps per image here."
    ),
    out: Path = typer.Option(None, "--out", "-o", help="Output folder for the label TIFFs (created)."),
    list_: bool = typer.Option(
        False, "--list", help="List the post-processors and filters with their params."
    ),
) -> None:
    """Turn model outputs into instance labels (marker-controlled watershed family, fg_watershed,
    threshold_cc, PatchPerPix, or the classical pipeline on raw images), then apply filters.

    Example: runner postprocess preds/ --method watershed_bcd --param th_distance=0.4
    --filter remove_small:min_size=30 --out instances/
    """
    from runner.postprocessing.describe import format_listing

    if list_:
        typer.echo(format_listing())
        return
    missing = [n for n, v in (("PRED_DIR", pred_dir), ("--method", method), ("--out", out)) if v is None]
    if missing:
        raise UserError(
            f"missing {', '.join(missing)}",
            hint="e.g. runner postprocess preds/ --method watershed_bcd --out instances/; --list shows "
            "the methods",
        )
    _run(pred_dir, method, param, filters, resolution, axes, debug_dir, out)


def _inputs(pred_dir: Path) -> list[Path]:
    from runner.io import list_images

    if not pred_dir.exists():
        raise UserError("no such file or folder", path=pred_dir)
    files = [pred_dir] if pred_dir.is_file() else list_images(pred_dir)
    if not files:
        raise UserError("no images found (expected .tif/.tiff/.zarr/.npy/.png files)", path=pred_dir)
    return files


def _run(pred_dir, method, param, filters, resolution, axes, debug_dir, out) -> None:
    from tqdm import tqdm

    from runner.io import read_image, staged_dir, stem, write_labels, write_text_atomic
    from runner.parsing import parse_floats, parse_params
    from runner.postprocessing import get_postprocessor, prepare_filters, run_pipeline

    pp = get_postprocessor(method)
    params = pp.make_params(parse_params(param))
    steps = prepare_filters(filters)
    res_override = parse_floats(resolution, name="--resolution", length=(2, 3))
    files = _inputs(pred_dir)
    with staged_dir(out) as stage, _maybe_staged(debug_dir) as dbg_stage:
        for path in tqdm(files, desc=f"postprocess {pp.name}", unit="img"):
            image = read_image(path, axes=axes)
            res = res_override or image.info.resolution
            if res is not None and len(res) != image.ndim:
                raise UserError(
                    f"--resolution has {len(res)} values but the image is {image.ndim}D", path=path
                )
            debug: dict = {}
            try:
                labels = run_pipeline(image.data, pp, params, steps, resolution=res, debug=debug)
            except UserError as exc:
                raise UserError(str(exc), path=path) from None
            _write_labels(stage / f"{stem(path)}.tif", labels, image.ndim, res, write_labels)
            if dbg_stage is not None:
                _write_debug(dbg_stage, stem(path), debug, image.ndim, res)
        config = {
            "method": pp.name,
            "params": params.model_dump(mode="json"),
            "filters": [{"name": f.name, "params": p.model_dump(mode="json")} for f, p in steps],
            "resolution": list(res_override) if res_override else "from file metadata",
            "inputs": str(pred_dir),
            "n_images": len(files),
        }
        write_text_atomic(stage / "postprocess.json", json.dumps(config, indent=2))
    typer.echo(
        f"wrote {len(files)} label image(s) to {out}"
        + (f" and debug maps to {debug_dir}" if debug_dir else "")
    )


def _write_labels(path: Path, labels, ndim: int, res, write_labels) -> None:
    from runner.io import write_tiff

    if labels.ndim == ndim:
        write_labels(path, labels, resolution=res)
    else:  # overlapping stack (N, (Z,) Y, X): one object per plane
        write_tiff(path, labels, axes="c" + "zyx"[-ndim:], resolution=res)


def _write_debug(folder: Path, name: str, debug: dict, ndim: int, res) -> None:
    """Each debug map as ``folder/<key>/<name>.tif`` (bool as uint8, floats as float32)."""
    import numpy as np

    from runner.io import write_tiff

    for key, arr in debug.items():
        arr = np.asarray(arr)
        if arr.ndim not in (ndim, ndim + 1):
            continue
        if arr.dtype == bool:
            arr = arr.astype(np.uint8)
        elif np.issubdtype(arr.dtype, np.floating):
            arr = arr.astype(np.float32)
        elif arr.dtype.itemsize > 4:
            arr = arr.astype(np.uint32)
        axes = "zyx"[-ndim:] if arr.ndim == ndim else "c" + "zyx"[-ndim:]
        (folder / key).mkdir(exist_ok=True)
        write_tiff(folder / key / f"{name}.tif", arr, axes=axes, resolution=res)


class _maybe_staged:
    """``staged_dir(path)`` when a path is given, else a no-op yielding None."""

    def __init__(self, path: Path | None):
        from runner.io import staged_dir

        self._cm = staged_dir(path) if path is not None else None

    def __enter__(self):
        return self._cm.__enter__() if self._cm is not None else None

    def __exit__(self, *exc):
        return self._cm.__exit__(*exc) if self._cm is not None else False

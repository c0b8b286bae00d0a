"""Read a results folder (what ``runner predict`` / ``runner evaluate`` write) into what the report shows.

Nothing here draws or renders: :func:`collect_results` only finds the files and parses the tables. Every
part is optional except that the folder must exist and hold at least one of ``summary.json``,
``metrics_per_image.csv``, ``run_config.json`` or ``instances/``.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner.errors import UserError

MEASUREMENT_COLUMNS = (
    "area",
    "volume",
    "diameter",
    "perimeter",
    "surface_area",
    "circularity",
    "sphericity",
    "elongation",
    "mean_intensity",
)
"""Per-object measurements the report draws a histogram of, in this order, when the CSVs have them."""


@dataclass
class ImageEntry:
    """One image of the run: its files (any may be missing) and its row of ``metrics_per_image.csv``."""

    name: str
    instances: Path | None = None
    image: Path | None = None
    gt: Path | None = None
    measurements: Path | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    probabilities: list[Path] = field(default_factory=list)
    """Raw outputs: ``probabilities/<name>.tif``, or one per output ``probabilities/<output>/<name>.tif``."""


@dataclass
class Results:
    """Everything found in a results folder."""

    folder: Path
    run_config: dict[str, Any] | None
    summary: dict[str, Any] | None
    images: list[ImageEntry]
    notes: list[str] = field(default_factory=list)
    """Plain-language remarks for the page (what is missing and how to get it)."""


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(
            f"cannot read JSON ({exc})", path=path, hint="re-run the command that wrote it"
        ) from None
    if not isinstance(data, dict):
        raise UserError("expected a JSON object", path=path, hint="re-run the command that wrote it")
    return data


def _number(text: str) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan


def read_metrics_csv(path: Path) -> dict[str, dict[str, float]]:
    """``metrics_per_image.csv`` as ``{image: {column: value}}`` (non-numbers become NaN)."""
    if not path.is_file():
        return {}
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    if rows and "image" not in rows[0]:
        raise UserError("no 'image' column", path=path, hint="expected the file `runner evaluate` writes")
    return {row["image"]: {k: _number(v) for k, v in row.items() if k != "image"} for row in rows}


def read_measurements(path: Path) -> dict[str, list[float]]:
    """The report's columns (:data:`MEASUREMENT_COLUMNS`) of one per-object CSV, as float lists."""
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        wanted = [c for c in MEASUREMENT_COLUMNS if c in (reader.fieldnames or ())]
        columns: dict[str, list[float]] = {c: [] for c in wanted}
        for row in reader:
            for c in wanted:
                value = _number(row[c])
                if math.isfinite(value):
                    columns[c].append(value)
    return columns


def _files_by_stem(folder: Path | None) -> dict[str, Path]:
    if folder is None or not folder.is_dir():
        return {}
    from runner.io.dataset import list_images
    from runner.io.images import stem

    return {stem(p): p for p in list_images(folder)}


def _probability_files(folder: Path) -> dict[str, list[Path]]:
    found: dict[str, list[Path]] = {}
    for sub in (folder, *sorted(p for p in folder.iterdir() if p.is_dir())) if folder.is_dir() else ():
        for name, path in _files_by_stem(sub).items():
            found.setdefault(name, []).append(path)
    return found


def _resolve(text: str | None, folder: Path) -> Path | None:
    """A path recorded in ``run_config.json``: as written (relative to the working folder), else relative to
    the results folder's parent."""
    if not text:
        return None
    path = Path(text)
    for candidate in (path, folder.parent / path):
        if candidate.exists():
            return candidate
    return None


def _input_paths(run_config: dict[str, Any] | None, folder: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for name, paths in ((run_config or {}).get("inputs") or {}).items():
        first = next(iter(paths.values()), None) if isinstance(paths, dict) else paths
        resolved = _resolve(first, folder)
        if resolved is not None:
            found[name] = resolved
    return found


def collect_results(
    folder: str | Path, *, images: str | Path | None = None, gt: str | Path | None = None
) -> Results:
    """Find what a results folder holds.

    Parameters
    ----------
    folder : the results folder.
    images : folder of the input images, when ``run_config.json`` does not say or its paths moved.
    gt : folder of ground-truth labels (overlays coloured by match), instead of the one the run used.

    Raises
    ------
    UserError
        The folder does not exist or holds nothing a report could show.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(
            "results folder not found", path=folder, hint="pass the --output folder of runner predict"
        )
    run_config = _read_json(folder / "run_config.json")
    summary = _read_json(folder / "summary.json")
    metrics = read_metrics_csv(folder / "metrics_per_image.csv")
    instances = _files_by_stem(folder / "instances")
    probabilities = _probability_files(folder / "probabilities")
    if run_config is None and summary is None and not metrics and not instances and not probabilities:
        raise UserError(
            "no summary.json, metrics_per_image.csv, run_config.json, instances/ or probabilities/ here",
            path=folder,
            hint="pass a folder written by runner predict --output or runner evaluate --output",
        )
    notes = []
    if summary is None:
        notes.append(
            "This results folder has no summary.json, so the report shows no metrics: run "
            "`runner predict ... --gt LABELS/` or `runner evaluate` to get them."
        )
    inputs = _files_by_stem(Path(images)) if images else _input_paths(run_config, folder)
    gt_folder = Path(gt) if gt else _resolve((run_config or {}).get("gt"), folder)
    gts = _files_by_stem(gt_folder) if summary is not None else {}
    measured = {p.stem: p for p in sorted((folder / "measurements").glob("*.csv"))}
    names = list(dict.fromkeys([*instances, *metrics, *probabilities]))
    entries = [
        ImageEntry(
            name=n,
            instances=instances.get(n),
            image=inputs.get(n),
            gt=gts.get(n),
            measurements=measured.get(n),
            metrics=metrics.get(n, {}),
            probabilities=probabilities.get(n, []),
        )
        for n in names
    ]
    if instances and not any(e.image for e in entries):
        notes.append(
            "The input images were not found (moved, or run_config.json is missing): the gallery shows the "
            "labels only; pass --images FOLDER to show them."
        )
    return Results(folder=folder, run_config=run_config, summary=summary, images=entries, notes=notes)

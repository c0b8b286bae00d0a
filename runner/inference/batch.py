"""The ``runner predict`` job: images in; instance labels, raw outputs, measurements and metrics out.

Layout of the output folder::

    OUT/instances/<name>.tif          instance labels (uint16/uint32), unless --no-postprocess
    OUT/probabilities/<name>.tif      raw model outputs (C,(Z,)Y,X) float32, with --save-probabilities or
                                      --no-postprocess (one sub-folder per output for multi-output models)
    OUT/measurements/<name>.csv       per-object measurements, with --measure
    OUT/metrics.csv, summary.json     with --gt, as ``runner evaluate`` writes them
    OUT/run_config.json               package, weights, device, tiling, post-processor and params used

Each image's files are written atomically; a failing image is reported and skipped while the others complete,
and the run then ends with a :class:`runner.errors.BatchError` (exit code 2) listing the failures.
"""

from __future__ import annotations

import json
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ConfigDict, Field

from runner.errors import BatchError, UserError
from runner.inference.inputs import Job, collect_jobs
from runner.inference.options import InferenceOptions
from runner.inference.package import Package, PostprocessingChoice, load_package
from runner.inference.progress import Progress
from runner.inference.resolution import (
    check_rescalable,
    input_plan,
    labels_to_input_grid,
    outputs_to_input_grid,
    package_voxel_size,
    to_package_grid,
)


class PredictOptions(InferenceOptions):
    """Everything ``runner predict`` can be told: the inference settings (:class:`InferenceOptions`) plus the
    files and post-processing ones (the CLI fills this; ``run_config.json`` records it)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    postprocess: str | None = Field(
        default=None, description="Post-processor name; default: the package's config.runner."
    )
    params: dict[str, Any] = Field(
        default_factory=dict, description="Post-processor params (override the package's)."
    )
    filters: list[str] = Field(
        default_factory=list, description="Label filters applied after the post-processor."
    )
    no_postprocess: bool = Field(default=False, description="Write only the raw outputs.")
    output_tensor: str | None = Field(
        default=None, description="Which output feeds the post-processor (default: first)."
    )
    save_probabilities: bool = Field(
        default=False, description="Also write the raw outputs to probabilities/."
    )
    overlays: bool = Field(
        default=False, description="Write overlays/<name>.png: image | outlines coloured by match."
    )
    measure: bool = Field(default=False, description="Write per-object measurements to measurements/.")
    axes: str | None = Field(
        default=None, description="Axes of the input files when their metadata is missing."
    )
    resolution: list[float] | None = Field(
        default=None, description="Pixel spacing (z,)y,x; default: from the files."
    )
    progress: bool = Field(default=True, description="Show progress bars on stderr.")


@dataclass
class PredictReport:
    """What a run did."""

    out: Path
    done: list[str] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)
    weight_format: str = ""
    device: str = ""
    seconds: float = 0.0
    summary: dict | None = None
    tracebacks: dict[str, str] = field(default_factory=dict)
    runs: dict[str, Any] = field(default_factory=dict)
    """Per image, how it ran (:class:`runner.inference.planning.RunInfo`)."""
    notes: list[str] = field(default_factory=list)
    """Things to tell the user once (e.g. a network with global operations)."""

    def modes(self) -> list[str]:
        """One line per distinct way the images ran, with the number of images, e.g.
        ``one pass of 512x512 (the image fits); halo 32 (package halo), border image: 3 image(s)``."""
        counts: dict[str, int] = {}
        for run in self.runs.values():
            line = run.describe()
            counts[line] = counts.get(line, 0) + 1
        return [f"{line}: {n} image(s)" for line, n in counts.items()]


class PredictBatchError(BatchError):
    """Some images failed; ``report`` tells what the run did with the others."""

    def __init__(self, report: PredictReport):
        super().__init__(report.failures)
        self.report = report


@dataclass
class _Post:
    """The resolved instance post-processing step (or none)."""

    choice: PostprocessingChoice | None
    processor: Any = None
    params: Any = None
    filters: list = field(default_factory=list)


def resolve_postprocessing(pkg: Package, options: PredictOptions) -> _Post:
    """The post-processor to run: ``--postprocess`` > the package's config > error (unless --no-postprocess).

    ``--param`` values without ``--postprocess`` override the package's tuned params. Names and params are
    validated here, before any image is read.
    """
    if options.no_postprocess:
        return _Post(None)
    from runner.postprocessing import get_postprocessor, prepare_filters

    declared = pkg.postprocessing
    if options.postprocess:
        params = dict(declared.params) if declared and declared.name == options.postprocess else {}
        choice = PostprocessingChoice(options.postprocess, {**params, **options.params})
    elif declared is not None:
        choice = PostprocessingChoice(declared.name, {**declared.params, **options.params})
    else:
        raise UserError(
            "the package declares no instance post-processor (config.runner.postprocessing)",
            path=pkg.source,
            hint="pass --postprocess NAME (e.g. fg_watershed; `runner postprocess --list` shows them) "
            "or --no-postprocess for raw outputs only",
        )
    processor = get_postprocessor(choice.name)
    return _Post(choice, processor, processor.make_params(choice.params), prepare_filters(options.filters))


def predict_files(
    package: Package | str | Path,
    inputs: list[str],
    out: str | Path,
    *,
    options: PredictOptions | None = None,
    gt: str | Path | None = None,
    on_tiles: Callable[[int, int], None] | None = None,
) -> PredictReport:
    """Run a package over image files and write the results folder (see the module docstring).

    Parameters
    ----------
    package : a loaded :class:`Package` or its path.
    inputs : ``--input`` values: a file, folder or glob, or ``NAME=PATH`` per model input.
    out : output folder (created; existing files of the same names are replaced).
    options : see :class:`PredictOptions`.
    gt : folder of ground-truth label images to evaluate against.
    on_tiles : called with ``(done, total)`` tiles of the current image as they finish (a GUI's progress
        bar; the napari widget uses it).

    Raises
    ------
    UserError
        Before anything is written: bad package, inputs, post-processor or params.
    PredictBatchError
        After the run, when some images failed (the others are written); a :class:`BatchError` with the
        run's :class:`PredictReport` as ``report``.
    """
    from runner.inference.pipeline import Predictor

    options = options or PredictOptions()
    start = time.perf_counter()
    pkg = package if isinstance(package, Package) else load_package(package)
    required = [t.id for t in pkg.inputs if not t.optional]
    jobs = collect_jobs(inputs, [t.id for t in pkg.inputs], required=required, gt=gt)
    post = resolve_postprocessing(pkg, options)
    check_rescalable(package_voxel_size(pkg.runner_config), options.resolution, where=pkg.source)
    if options.tta is None:
        options = options.model_copy(update={"tta": pkg.test_time_augmentation})
    out = check_destination(Path(out), pkg, options, post, gt)
    predictor = Predictor(pkg, options)
    report = PredictReport(out=out, weight_format=predictor.weight_format, device=str(predictor.device))
    per_image: dict[str, Any] = {}
    with predictor, Progress(len(jobs), enabled=options.progress, on_tiles=on_tiles) as progress:
        for job in jobs:
            progress.start(job.name)
            try:
                per_image[job.name] = run_one(job, predictor, post, options, out, progress)
                report.done.append(job.name)
                if predictor.last_run is not None:
                    report.runs[job.name] = predictor.last_run
            except UserError as exc:
                report.failures[job.name] = str(exc)
            except Exception as exc:  # one broken image must not stop the batch; --debug shows the traceback
                report.failures[job.name] = f"{type(exc).__name__}: {exc}"
                report.tracebacks[job.name] = traceback.format_exc()
            progress.finish()
    if gt is not None and report.done:
        report.summary = write_batch_evaluation(out, per_image)
    report.seconds = time.perf_counter() - start
    report.notes = list(predictor.notes)
    rescaled = {n: r["rescaled_to"] for n, r in per_image.items() if "rescaled_to" in r}
    if report.done:  # nothing (not even the folder) is created when every image failed
        _write_run_config(out, pkg, predictor, post, options, jobs, report, gt, rescaled=rescaled)
    if report.failures:
        raise PredictBatchError(report)
    return report


def check_destination(out: Path, pkg: Package, options: PredictOptions, post: _Post, gt) -> Path:
    """Checks that need no image: output folder, --gt with --no-postprocess, --output-tensor."""
    if gt is not None and post.choice is None:
        raise UserError(
            "--gt evaluates instance labels, but --no-postprocess makes none",
            hint="drop --no-postprocess or --gt",
        )
    from runner.safety import check_output_dir, check_output_file

    check_output_dir(out)  # not below a file, writable; run_config.json must be a file if present
    if (out / "run_config.json").exists():
        check_output_file(out / "run_config.json")
    _check_output_tensor(pkg, options)
    return out


def _check_output_tensor(pkg: Package, options: PredictOptions) -> None:
    ids = [t.id for t in pkg.outputs]
    if options.output_tensor is not None and options.output_tensor not in ids:
        raise UserError(
            f"the model has no output {options.output_tensor!r}",
            path=pkg.source,
            hint=f"its outputs are {', '.join(ids)}",
        )


def _read_inputs(job: Job, options: PredictOptions):
    from runner.io import read_image

    images = {name: read_image(path, axes=options.axes) for name, path in job.paths.items()}
    first = next(iter(images.values()))
    resolution = tuple(options.resolution) if options.resolution else first.info.resolution
    if resolution is not None and len(resolution) != first.ndim:
        raise UserError(
            f"--resolution has {len(resolution)} values but the image is {first.ndim}D", path=first.info.path
        )
    return images, first, resolution


def run_one(job: Job, predictor, post: _Post, options: PredictOptions, out: Path, progress) -> dict:
    """Predict one job, then write its files (all computed first: a failure leaves nothing of this image).

    An input whose voxel size differs from the package's (``config.runner.voxel_size``) is predicted at the
    package's and its labels mapped back (see :mod:`runner.inference.resolution`); there the post-processor
    gets the spacing the package was tuned with."""
    cfg = predictor.package.runner_config
    voxel = package_voxel_size(cfg)
    grid_res = (cfg.resolution if cfg else None) or voxel
    _check_job_outputs(job.name, out, options, post)
    images, first, resolution = _read_inputs(job, options)
    gt = _read_gt(job, first) if job.gt is not None else None
    where = first.info.path
    plan = input_plan(voxel, options.resolution, first.info.resolution, first.data.shape[1:], where=where)
    data = {k: im.data if plan is None else to_package_grid(im.data, plan) for k, im in images.items()}
    outputs = predictor.predict(data, progress=progress.tiles, where=where, tta=options.tta)
    result: dict = {"resolution": resolution, "shape": first.data.shape[1:]}
    if plan is not None:
        result["rescaled_to"] = {"voxel_size": list(plan.package_voxel), "shape": list(plan.package_shape)}
    labels = table = None
    if post.choice is not None:
        pp_image = first.data if plan is None else data[next(iter(data))]
        pp_res = resolution if voxel is None else grid_res  # the spacing a voxel-size package was tuned at
        labels = _instances(outputs, pp_image, post, options, pp_res, where=where)
        if plan is not None:
            labels = labels_to_input_grid(labels, plan)
        if gt is not None:
            from runner.metrics import evaluate_image

            overlapping = labels.ndim != first.ndim
            result["metrics"] = evaluate_image(gt, labels, name=job.name, overlapping=overlapping)
        if options.measure and labels.ndim == first.ndim:
            from runner.measure import measure_labels

            table = measure_labels(labels, image=first.data, resolution=resolution)
    if plan is not None and options.save_probabilities:
        outputs = {k: outputs_to_input_grid(v, plan) for k, v in outputs.items()}
    _write_outputs(
        job.name, out, outputs, labels, table, options, post, ndim=first.ndim, resolution=resolution
    )
    if options.overlays and labels is not None and labels.ndim == first.ndim:
        _write_overlay(out, job.name, first.data, labels, gt, result.get("metrics"))
    return result


def _check_job_outputs(name: str, out: Path, options: PredictOptions, post: _Post) -> None:
    """Before any work on an image: none of its output files is an existing folder (never replaced)."""
    from runner.safety import check_output_file

    planned = []
    if options.save_probabilities or post.choice is None:
        planned.append(out / "probabilities" / f"{name}.tif")
    if post.choice is not None:
        planned.append(out / "instances" / f"{name}.tif")
        if options.measure:
            planned.append(out / "measurements" / f"{name}.csv")
        if options.overlays:
            planned.append(out / "overlays" / f"{name}.png")
    for path in planned:
        if path.exists():
            check_output_file(path)


def _write_overlay(out: Path, name: str, image: np.ndarray, labels, gt, metrics) -> None:
    from runner.viz import save_match_figure

    matches = metrics.matches(0.5) if metrics is not None else None
    short = name if len(name) <= 24 else name[:20] + "..."
    title = short if metrics is None else f"{short}: accuracy@0.5 {metrics.at(0.5).accuracy:.3f}"
    (out / "overlays").mkdir(exist_ok=True)
    save_match_figure(out / "overlays" / f"{name}.png", image.mean(0), labels, gt, matches, title=title)


def _write_outputs(
    name, out: Path, outputs, labels, table, options, post: _Post, *, ndim, resolution
) -> None:
    from runner.io import write_image, write_labels, write_tiff

    out.mkdir(exist_ok=True)  # created with the first image that succeeded
    if options.save_probabilities or post.choice is None:
        for oid, arr in outputs.items():
            sub = out / "probabilities" if len(outputs) == 1 else out / "probabilities" / oid
            sub.mkdir(parents=True, exist_ok=True)
            write_image(sub / f"{name}.tif", arr.astype(np.float32, copy=False), resolution=resolution)
    if labels is not None:
        (out / "instances").mkdir(exist_ok=True)
        if labels.ndim == ndim:
            write_labels(out / "instances" / f"{name}.tif", labels, resolution=resolution)
        else:  # overlapping objects: one plane per object
            axes = "c" + "zyx"[-ndim:]
            write_tiff(out / "instances" / f"{name}.tif", labels, axes=axes, resolution=resolution)
    if table is not None:
        (out / "measurements").mkdir(exist_ok=True)
        table.to_csv(out / "measurements" / f"{name}.csv")


def _read_gt(job: Job, first) -> np.ndarray:
    """The ground truth of a job, checked against the image before any prediction is spent on it."""
    from runner.io import read_labels

    assert job.gt is not None, "only called for jobs with ground truth"
    return read_labels(job.gt, spatial_shape=first.data.shape[1:]).data


def write_batch_evaluation(out: Path, per_image: dict[str, Any]) -> dict | None:
    """``metrics_per_image.csv``, ``metrics_per_threshold.csv``, ``summary.json`` and ``charts/`` in ``out``,
    as ``runner evaluate`` writes them (images that failed are left out)."""
    from runner.metrics.report import write_evaluation

    items = [(name, r["metrics"]) for name, r in per_image.items() if "metrics" in r]
    if not items:
        return None
    return write_evaluation(items, out, associations=False).summary


def _instances(outputs: dict, image: np.ndarray, post: _Post, options: PredictOptions, resolution, *, where):
    from runner.postprocessing import run_pipeline

    assert post.choice is not None, "only called with a post-processor"
    key = options.output_tensor or next(iter(outputs))
    source = image if post.processor.input == "image" else outputs[key]
    try:
        return run_pipeline(source, post.processor, post.params, post.filters, resolution=resolution)
    except UserError as exc:
        raise UserError(f"post-processor {post.choice.name!r} failed: {exc}", path=where) from None


def _write_run_config(out, pkg, predictor, post: _Post, options, jobs, report, gt, *, rescaled=None) -> None:
    from runner import __version__
    from runner.io import write_text_atomic

    run = predictor.last_run
    config = {
        "runner_version": __version__,
        "package": {
            "source": str(pkg.source),
            "name": pkg.name,
            "format_version": pkg.original_format_version,
            "weight_formats": list(pkg.weight_formats),
            "targets": pkg.targets,
        },
        "weights": report.weight_format,
        "device": report.device,
        "tiling": None
        if run is None
        else {
            **run.as_dict(),
            "margin": list(run.margin),
            "tiles_last_image": run.n_tiles,
            "modes": report.modes(),
            "per_image": {name: r.as_dict() for name, r in report.runs.items()},
        },
        "notes": report.notes,
        "postprocessing": None
        if post.choice is None
        else {
            "name": post.choice.name,
            "params": post.params.model_dump(mode="json"),
            "filters": [{"name": f.name, "params": p.model_dump(mode="json")} for f, p in post.filters],
        },
        "options": options.model_dump(mode="json"),
        "inputs": {j.name: {k: str(v) for k, v in j.paths.items()} for j in jobs},
        "gt": None if gt is None else str(gt),
        "voxel_size": pkg.runner_config.voxel_size if pkg.runner_config else None,
        "rescaled": rescaled or {},
        "done": report.done,
        "failures": report.failures,
        "seconds": round(report.seconds, 3),
    }
    write_text_atomic(out / "run_config.json", json.dumps(config, indent=2, default=str))

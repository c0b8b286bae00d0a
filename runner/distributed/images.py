"""``runner predict PKG --input images/ --output out/ --cluster local:N``: many images spread over a Dask
cluster, with the outputs of the single-process run (``instances/``, ``probabilities/``, ``measurements/``,
``metrics_*.csv`` and ``summary.json`` with ``--gt``).

Each image is one task; a worker loads the model once (:func:`runner.distributed.model.loaded`) and runs the
same per-image code as ``runner predict`` (:mod:`runner.inference.batch`), whose writes are atomic. A marker
``.runner-done/<name>.json`` is written after all of an image's files: a rerun with the same package and
options skips the images that have one (their metrics are recomputed from the written labels), so an
interrupted run resumes where it stopped and never trusts an image half written.
"""

from __future__ import annotations

import hashlib
import json
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.errors import UserError
from runner.inference.batch import PredictBatchError, PredictReport

DONE = ".runner-done"


@dataclass
class ImagesReport(PredictReport):
    """A :class:`PredictReport` plus the images skipped as already done and the cluster used."""

    resumed: int = 0
    cluster: str = ""


class _Silent:
    """The batch code's progress hooks, unused on workers (the driver's bar counts images)."""

    def tiles(self, done: int, total: int) -> None:
        return None


def _fingerprint(package: Path, options: dict) -> str:
    stat = package.stat()
    text = json.dumps(
        [str(package.resolve()), stat.st_size, stat.st_mtime_ns, options], sort_keys=True, default=str
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _is_done(out: Path, name: str, fingerprint: str) -> bool:
    marker = out / DONE / f"{name}.json"
    try:
        return json.loads(marker.read_text())["fingerprint"] == fingerprint
    except (OSError, ValueError, KeyError):
        return False


def _predict_job(job, package: str, options: dict, out: str, fingerprint: str) -> dict:
    """One image on a worker: predict, write its files, then its done-marker."""
    from runner.distributed.model import PREDICT_LOCK, loaded
    from runner.inference.batch import run_one
    from runner.io import write_text_atomic

    predictor, post, opts = loaded(package, options)
    with PREDICT_LOCK:  # the predictor is shared by the worker's threads
        result = run_one(job, predictor, post, opts, Path(out), _Silent())
    marker = Path(out) / DONE / f"{job.name}.json"
    marker.parent.mkdir(exist_ok=True)
    write_text_atomic(marker, json.dumps({"fingerprint": fingerprint, "weights": predictor.weight_format}))
    return result


def _evaluate_done(job, out: str) -> dict:
    """Metrics of an image done by an earlier run, from its written labels."""
    from runner.io import read_labels
    from runner.metrics import evaluate_image

    labels = read_labels(Path(out) / "instances" / f"{job.name}.tif").data
    gt = read_labels(job.gt).data
    return {"metrics": evaluate_image(gt, labels, name=job.name, overlapping=labels.ndim != gt.ndim)}


def _safe(func):
    def run(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except UserError as exc:
            return {"error": str(exc)}
        except Exception as exc:  # one broken image must not stop the batch (as in the single-process run)
            return {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}

    run.__name__ = func.__name__
    return run


def predict_images(
    package: str | Path,
    inputs: list[str],
    out: str | Path,
    *,
    options,
    gt: str | Path | None = None,
    cluster: str = "local:1",
    memory_limit: str | None = None,
) -> ImagesReport:
    """Predict image files on a Dask cluster; see the module docstring.

    Raises
    ------
    UserError
        Bad package, inputs, params or cluster, before anything is written.
    PredictBatchError
        After the run, when some images failed (the others are written).
    """
    from runner.distributed.cluster import connect, describe
    from runner.inference.batch import check_destination, resolve_postprocessing, write_batch_evaluation
    from runner.inference.inputs import collect_jobs
    from runner.inference.package import load_package

    start = time.perf_counter()
    pkg = load_package(package)
    required = [t.id for t in pkg.inputs if not t.optional]
    jobs = collect_jobs(inputs, [t.id for t in pkg.inputs], required=required, gt=gt)
    post = resolve_postprocessing(pkg, options)
    if options.tta is None:
        options = options.model_copy(update={"tta": pkg.test_time_augmentation})
    out = check_destination(Path(out), pkg, options, post, gt)
    opts = options.model_dump(mode="json")
    opts["progress"] = False
    fingerprint = _fingerprint(Path(package), {k: v for k, v in opts.items() if k != "progress"})
    with connect(cluster, memory_limit=memory_limit) as client:
        where = describe(client)
        out.mkdir(exist_ok=True)
        done = [j for j in jobs if post.choice is not None and _is_done(out, j.name, fingerprint)]
        todo = [j for j in jobs if j not in done]
        if options.progress:
            print(f"cluster: {where}; {len(todo)} image(s) to predict, {len(done)} done before", flush=True)
        futures = {
            j.name: client.submit(
                _safe(_predict_job), j, str(package), opts, str(out), fingerprint, pure=False
            )
            for j in todo
        }
        if gt is not None:
            futures.update(
                {j.name: client.submit(_safe(_evaluate_done), j, str(out), pure=False) for j in done}
            )
        results = _collect(client, futures, options.progress)
    report = ImagesReport(out=out, resumed=len(done), cluster=where, device=options.device)
    per_image: dict[str, Any] = {}
    for job in jobs:
        result = results.get(job.name, {})
        if "error" in result:
            report.failures[job.name] = result["error"]
            if "traceback" in result:
                report.tracebacks[job.name] = result["traceback"]
            continue
        report.done.append(job.name)
        per_image[job.name] = result
    if gt is not None:
        report.summary = write_batch_evaluation(out, per_image)
    report.seconds = time.perf_counter() - start
    _write_run_config(out, package, opts, jobs, report, gt)
    if report.failures:
        raise PredictBatchError(report)
    return report


def _collect(client, futures: dict, progress: bool) -> dict[str, dict]:
    from distributed import as_completed

    names = {f.key: name for name, f in futures.items()}
    bar: Any = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(futures), desc="images", unit="img", dynamic_ncols=True)
    results: dict[str, dict] = {}
    try:
        for future in as_completed(list(futures.values())):
            results[names[future.key]] = future.result()
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return results


def _write_run_config(out: Path, package, options: dict, jobs, report: ImagesReport, gt) -> None:
    from runner import __version__
    from runner.io import write_text_atomic

    config = {
        "runner_version": __version__,
        "package": str(package),
        "cluster": report.cluster,
        "options": options,
        "inputs": {j.name: {k: str(v) for k, v in j.paths.items()} for j in jobs},
        "gt": None if gt is None else str(gt),
        "done": report.done,
        "resumed": report.resumed,
        "failures": report.failures,
        "seconds": round(report.seconds, 3),
    }
    write_text_atomic(out / "run_config.json", json.dumps(config, indent=2, default=str))

"""``runner tune`` as a library call: :func:`retune_package` predicts once, searches the post-processor's
params (:mod:`runner.tuning`), scores the best on the tuning (or ``--validate``) images and writes the new
package (:func:`exporters.tuned_package.write_tuned_package`)."""

from __future__ import annotations

import datetime
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exporters.build import check_out
from exporters.docs import validation_section
from exporters.evaluation import THRESHOLDS, ValidationReport, report_from_summary
from exporters.tuned_package import write_tuned_package
from runner.contracts import PostprocessingConfig, RunnerConfig, TunedOn, ValidationInfo
from runner.errors import UserError
from runner.tuning import TuneData, TuneResult


@dataclass
class RetuneResult:
    """What :func:`retune_package` did: the search (every trial) and the package it wrote."""

    search: TuneResult
    out: Path
    method: str
    tuned_on: TunedOn


def score_report(data: TuneData, method: str, params: dict, *, weights: str) -> ValidationReport:
    """The README/config validation report of ``params`` on the tuning predictions."""
    from runner.metrics import evaluate_image, summarize
    from runner.postprocessing import run_postprocessor

    scored = [
        evaluate_image(
            gt,
            run_postprocessor(method, pred, params, resolution=data.resolution),
            thresholds=THRESHOLDS,
            name=name,
        )
        for pred, gt, name in zip(data.predictions, data.ground_truths, data.names, strict=True)
    ]
    report = report_from_summary(summarize(scored), names=data.names, source=data.source, role="validation")
    report.weights = weights
    return report


@dataclass
class RetuneOptions:
    """The options of ``runner tune`` (see :func:`retune_package`)."""

    metric: str = "accuracy@0.5"
    """``FIELD@IOU`` or ``av_ap`` (:func:`runner.tuning.tuning_metric`)."""
    method: str | None = None
    """Post-processor to tune; default the package's ``config.runner.postprocessing``."""
    params: dict = field(default_factory=dict)
    """Starting params (over the package's own)."""
    grid: dict[str, list] = field(default_factory=dict)
    """Values to try per param (replacing the post-processor's ``tuning_grid`` entry)."""
    rounds: int = 2
    tta: bool | None = None
    """Tune on mirror-averaged outputs; default what the package says."""
    device: str = "auto"
    trust_code: bool = False
    max_images: int | None = None
    held_out: bool = False
    """Tune only on the images of ``data`` its recipe held back from training (``data.held_out``)."""
    held_out_from: Path | None = None
    """A recipe file whose ``data.held_out`` lists the tuning images (implies ``held_out``)."""
    validate: Path | None = None
    """An annotated split never tuned on: the README and ``config.runner.validation`` report the tuned params
    on it instead of on the tuning images."""
    notes: str | None = None
    """Markdown for the README's Validation section; default the recipe's ``validation_notes``."""
    overwrite: bool = False
    progress: bool = True


@dataclass
class _Plan:
    """What the package and the options resolve to before anything is predicted."""

    name: str
    processor: Any
    start: dict
    tta: bool
    weights: str
    names: list[str] | None


def retune_package(
    model: str | Path,
    data: str | Path,
    out: str | Path,
    options: RetuneOptions | None = None,
    *,
    echo: Callable[[str, bool], None] | None = None,
) -> RetuneResult:
    """``runner tune``: predict ``data`` once with ``model``, search the post-processor's params, and write
    ``out``, a copy of the package carrying the best params, their provenance and the new validation scores.

    Parameters
    ----------
    model : a package (zip, folder, rdf) or a training run folder / checkpoint (exported first).
    data : annotated split with ``x/`` and ``y/`` (or a dataset with ``val/``).
    out : the new package (``.zip`` or folder); nothing is written unless it passes its tests.
    echo : ``echo(text, is_status)`` for status lines (``True``) and the trial table (``False``).
    """
    from runner.inference import load_package
    from runner.tuning import format_trials, predict_for_tuning, tune, tuning_metric

    o = options or RetuneOptions()
    say = echo or (lambda text, status: None)
    tuning_metric(o.metric)  # a bad name fails before anything is predicted
    model, out = Path(model), Path(out)
    check_out(out, o.overwrite)
    with tempfile.TemporaryDirectory(prefix="bmz-tune-src-") as tmp:
        source = _as_package(model, Path(tmp), progress=o.progress, say=say)
        pkg = load_package(source)
        try:
            plan = _plan(pkg, model, data, o)
            prepared = predict_for_tuning(
                pkg,
                data,
                device=o.device,
                trust_code=o.trust_code,
                tta=plan.tta,
                max_images=o.max_images,
                method_input=plan.processor.input,
                progress=o.progress,
                names=plan.names,
            )
            say(
                f"tuning {plan.name} on {len(prepared.names)} image(s) of {prepared.source} ({o.metric})",
                True,
            )
            result = tune(
                prepared.predictions,
                prepared.ground_truths,
                plan.name,
                plan.start,
                metric=o.metric,
                grid=o.grid,
                rounds=o.rounds,
                resolution=prepared.resolution,
            )
            say(format_trials(result, list(result.space)), False)
            tuned_on = _write(pkg, source, out, plan, o, prepared, result, say)
        finally:
            pkg.close()
    return RetuneResult(search=result, out=out, method=plan.name, tuned_on=tuned_on)


def _plan(pkg, model: Path, data: str | Path, o: RetuneOptions) -> _Plan:
    """The post-processor, starting params, TTA, weight format and tuning images; checks the options."""
    from runner.postprocessing import get_postprocessor
    from runner.tuning import search_space

    declared = pkg.postprocessing
    name = o.method or (declared.name if declared else None)
    if name is None:
        raise UserError(
            "the package declares no post-processor",
            path=model,
            hint="pass --postprocess NAME (runner postprocess --list)",
        )
    processor = get_postprocessor(name)
    start = {**(declared.params if declared and declared.name == name else {}), **o.params}
    search_space(name, processor.params_model, overrides=o.grid)  # unknown --grid keys fail early
    runnable = ("onnx", "torchscript", "pytorch_state_dict") if o.trust_code else ("onnx", "torchscript")
    names = None
    if o.held_out or o.held_out_from is not None:
        names = held_out_names(pkg.runner_config, o.held_out_from, where=model)
    if o.validate is not None:
        check_disjoint(data, o.validate)
    return _Plan(
        name=name,
        processor=processor,
        start=start,
        tta=pkg.test_time_augmentation if o.tta is None else o.tta,
        weights=next((f for f in runnable if f in pkg.weight_formats), "none"),
        names=names,
    )


def _write(pkg, source: Path, out: Path, plan: _Plan, o: RetuneOptions, prepared, result, say) -> TunedOn:
    """Score the best params (on ``--validate`` when given) and write the tuned package."""
    from runner.tuning import predict_for_tuning

    scored = prepared
    if o.validate is not None:
        scored = predict_for_tuning(
            pkg,
            o.validate,
            device=o.device,
            trust_code=o.trust_code,
            tta=plan.tta,
            method_input=plan.processor.input,
            progress=o.progress,
        )
    report = score_report(scored, plan.name, result.best_params, weights=plan.weights)
    if o.validate is not None:
        say(f"on {report.source} ({len(scored.names)} image(s), never tuned on): {_brief(report)}", False)
    config = pkg.runner_config
    tuned_on = TunedOn(
        data=prepared.source,
        images=prepared.names,
        metric=o.metric,
        score=result.best_score,
        default_score=result.default_score,
        n_trials=len(result.trials),
        tta=plan.tta,
        searched=result.space,
        held_out=None if plan.names is None else _excluded_from_training(config, plan.names),
        date=datetime.date.today().isoformat(),
    )
    lines = validation_section(
        report,
        package_name=out.name,
        postprocessing=(plan.name, result.best_params),
        voxel_size=config.voxel_size if config else None,
        tuned_on=tuned_on,
        notes=o.notes or (config.validation_notes if config else None),
    )
    write_tuned_package(
        source,
        out,
        postprocessing=PostprocessingConfig(name=plan.name, params=result.best_params),
        tuned_on=tuned_on,
        validation_lines=lines,
        validation=_validation_block(config, report, scored),
        overwrite=o.overwrite,
        test_time_augmentation=plan.tta,
        trust_code=o.trust_code,
    )
    return tuned_on


def _validation_block(
    config: RunnerConfig | None, report: ValidationReport, data: TuneData
) -> ValidationInfo:
    """The package's ``config.runner.validation`` with the scores on the tuning images."""
    previous = config.validation if config else None
    return ValidationInfo.model_validate(
        {
            **(previous.model_dump(exclude_unset=True) if previous else {}),
            "metrics": report.metrics,
            "source": data.source,
            "n_images": len(data.names),
            "images": data.names,
            "per_threshold": report.per_threshold,
        }
    )


def held_out_names(config: RunnerConfig | None, recipe_path: Path | None, *, where: Path) -> list[str]:
    """The ``data.held_out`` list of the recipe at ``recipe_path``, else of the package's recorded recipe."""
    if recipe_path is not None:
        from runner.recipes import load_recipe

        names, where = list(load_recipe(recipe_path).data.held_out), recipe_path
    else:
        recipe = (config.recipe if config else None) or {}
        names = list((recipe.get("data") or {}).get("held_out") or [])
    if not names:
        raise UserError(
            "no held-out tuning images recorded (data.held_out is empty)",
            path=where,
            hint="list them in the recipe's data.held_out and pass it with --held-out-from",
        )
    return names


def check_disjoint(data: str | Path, validate: str | Path) -> None:
    """Refuse a ``--validate`` split that is the split tuned on."""
    from runner.tuning import tuning_split

    if tuning_split(data).resolve() == tuning_split(validate).resolve():
        raise UserError(
            "--validate is the split tuned on: its numbers would be optimistic",
            path=validate,
            hint="tune on held-back training images (--held-out) and validate on val",
        )


def _brief(report: ValidationReport) -> str:
    m = report.metrics
    keys = [k for k in ("accuracy@0.5", "f1@0.5", "av_ap_50_90", "aji") if k in m]
    return ", ".join(f"{k} {m[k]:.4f}" for k in keys) or "see the README"


def _excluded_from_training(config: RunnerConfig | None, names: list[str]) -> bool:
    """Whether the package's own recipe held ``names`` back from the weight updates."""
    recipe = (config.recipe if config else None) or {}
    recorded = set((recipe.get("data") or {}).get("held_out") or [])
    return bool(names) and set(names) <= recorded


def _as_package(model: Path, tmp: Path, *, progress: bool, say: Callable[[str, bool], None]) -> Path:
    """A package path for ``model``: itself, or a fresh export of a run folder / checkpoint."""
    if model.is_dir() and (model / "checkpoints").is_dir() or model.suffix == ".pt":
        from exporters.build import export_package

        say(f"exporting run {model} first", True)
        return export_package(model, tmp / "run_package.zip", progress=progress).path
    return model

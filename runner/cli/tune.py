"""``runner tune``: tune the post-processor's params of a package (or run) on annotated images."""

from __future__ import annotations

from pathlib import Path

import typer

from runner.cli._app import command


@command("tune")
def tune_cmd(
    model: Path = typer.Argument(
        ..., help="Model package (.zip, folder, rdf.yaml) or a training run folder."
    ),
    data: Path = typer.Option(
        ..., "--data", "-d", help="Annotated split with x/ and y/ (or a dataset with val/)."
    ),
    out: Path = typer.Option(
        ..., "--out", "-o", help="New package (.zip or folder) carrying the tuned params."
    ),
    metric: str = typer.Option(
        "accuracy@0.5",
        "--metric",
        help="FIELD@IOU pooled over the images (accuracy@0.5, f1@0.7, panoptic_quality@0.5, ...) or av_ap "
        "(accuracy averaged over IoU 0.5:0.1:0.9).",
    ),
    postprocess: str = typer.Option(
        None,
        "--postprocess",
        "-m",
        help="Post-processor to tune (default: the package's config.runner.postprocessing).",
    ),
    param: list[str] = typer.Option(None, "--param", "-p", help="Starting param key=value, repeatable."),
    grid: list[str] = typer.Option(
        None,
        "--grid",
        "-g",
        help="Values to try, key=v1,v2,... (repeatable; replaces the built-in values of that param).",
    ),
    rounds: int = typer.Option(2, min=1, max=10, help="Coordinate-search rounds over all params."),
    tta: bool = typer.Option(
        None,
        "--tta/--no-tta",
        help="Tune on test-time-augmented (mirror-averaged) predictions; default: as the package says "
        "(config.runner.test_time_augmentation), so re-tuning a TTA package keeps TTA.",
    ),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
    trust_code: bool = typer.Option(
        False,
        "--trust-code",
        help="Allow running the package's own Python code (pytorch_state_dict weights; TorchScript graphs "
        "that use ops beyond tensor maths), for tuning and for the new package's final test.",
    ),
    max_images: int = typer.Option(None, min=1, help="Use at most this many images."),
    held_out: bool = typer.Option(
        False,
        "--held-out",
        help="Tune only on the training images the recipe held back from training (data.held_out of the "
        "package's recipe, or of --held-out-from); --data is then the training split.",
    ),
    held_out_from: Path = typer.Option(
        None,
        "--held-out-from",
        help="Recipe YAML whose data.held_out lists the tuning images (implies --held-out); for packages "
        "exported before the list was recorded.",
    ),
    validate: Path = typer.Option(
        None,
        "--validate",
        help="Annotated split never used for tuning (e.g. data/val): the README's Validation section and "
        "config.runner.validation then report the tuned params on it, not on the tuning images.",
    ),
    notes: Path = typer.Option(
        None,
        "--notes",
        help="Markdown file added to the README's Validation section (e.g. published results for context); "
        "default: the training recipe's export.validation_notes.",
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Search post-processing params on annotated images without retraining (predict once, post-process
    many times), print every tried combination with its score, and write a package carrying the best params.

    Example: runner tune model.zip --data data/dsb2018/val --metric accuracy@0.5 --out model_tuned.zip
    """
    import datetime
    import tempfile

    from runner.cli._parse import parse_params
    from runner.contracts import PostprocessingConfig, TunedOn, ValidationInfo
    from runner.errors import UserError
    from runner.inference import load_package
    from runner.postprocessing import get_postprocessor
    from runner.tuning import (
        format_trials,
        predict_for_tuning,
        score_report,
        search_space,
        tune,
        tuning_metric,
    )

    tuning_metric(metric)  # a bad name fails before anything is predicted
    if not out.parent.exists():
        raise UserError("the output's parent folder does not exist", path=out.parent, hint="create it first")
    if out.exists() and not overwrite:
        raise UserError("output exists", path=out, hint="pass --overwrite or choose another path")
    notes_text = None
    if notes is not None:
        if not notes.is_file():
            raise UserError("notes file not found", path=notes, hint="give a Markdown file to --notes")
        notes_text = notes.read_text(encoding="utf-8").strip() or None
    with tempfile.TemporaryDirectory(prefix="bmz-tune-src-") as tmp:
        source = _as_package(model, Path(tmp), quiet=quiet)
        pkg = load_package(source)
        declared = pkg.postprocessing
        name = postprocess or (declared.name if declared else None)
        if name is None:
            raise UserError(
                "the package declares no post-processor",
                path=model,
                hint="pass --postprocess NAME (runner postprocess --list)",
            )
        if tta is None:
            tta = pkg.test_time_augmentation
        processor = get_postprocessor(name)
        start = {**(declared.params if declared and declared.name == name else {}), **parse_params(param)}
        grid_values = {k: v if isinstance(v, list) else [v] for k, v in parse_params(grid).items()}
        search_space(name, processor.params_model, overrides=grid_values)  # unknown --grid keys fail early
        runnable = ("onnx", "torchscript", "pytorch_state_dict") if trust_code else ("onnx", "torchscript")
        weights = next((f for f in runnable if f in pkg.weight_formats), "none")
        names = _held_out_names(pkg, model, held_out_from) if held_out or held_out_from else None
        if validate is not None:
            _check_disjoint(data, validate)
        prepared = predict_for_tuning(
            pkg,
            data,
            device=device,
            trust_code=trust_code,
            tta=tta,
            max_images=max_images,
            method_input=processor.input,
            progress=not quiet,
            names=names,
        )
        typer.echo(
            f"tuning {name} on {len(prepared.names)} image(s) of {prepared.source} ({metric})", err=True
        )
        result = tune(
            prepared.predictions,
            prepared.ground_truths,
            name,
            start,
            metric=metric,
            grid=grid_values,
            rounds=rounds,
            resolution=prepared.resolution,
        )
        typer.echo(format_trials(result, list(result.space)))
        scored = prepared
        if validate is not None:
            scored = predict_for_tuning(
                pkg, validate, device=device, tta=tta, method_input=processor.input, progress=not quiet
            )
        report = score_report(scored, name, result.best_params, weights=weights)
        if validate is not None:
            n_val = len(scored.names)
            typer.echo(f"on {report.source} ({n_val} image(s), never tuned on): " + _brief(report))
        tuned_on = TunedOn(
            data=prepared.source,
            images=prepared.names,
            metric=metric,
            score=result.best_score,
            default_score=result.default_score,
            n_trials=len(result.trials),
            tta=tta,
            searched=result.space,
            held_out=None if names is None else _excluded_from_training(pkg, names),
            date=datetime.date.today().isoformat(),
        )
        from exporters.docs import validation_section
        from exporters.retune import write_tuned_package

        lines = validation_section(
            report,
            package_name=out.name,
            postprocessing=(name, result.best_params),
            voxel_size=pkg.runner_config.voxel_size if pkg.runner_config else None,
            tuned_on=tuned_on,
            notes=notes_text or _notes(pkg),
        )
        previous = pkg.runner_config.validation if pkg.runner_config else None
        validation = ValidationInfo.model_validate(
            {
                **(previous.model_dump(exclude_unset=True) if previous else {}),
                "metrics": report.metrics,
                "source": scored.source,
                "n_images": len(scored.names),
                "images": scored.names,
                "per_threshold": report.per_threshold,
            }
        )
        write_tuned_package(
            source,
            out,
            postprocessing=PostprocessingConfig(name=name, params=result.best_params),
            tuned_on=tuned_on,
            validation_lines=lines,
            validation=validation,
            overwrite=overwrite,
            test_time_augmentation=tta,
            trust_code=trust_code,
        )
        pkg.close()
    changed = result.changed or "the same params"
    typer.echo(f"{metric}: {result.default_score:.4f} -> {result.best_score:.4f} with {changed}")
    typer.echo(f"wrote {out}")


def _as_package(model: Path, tmp: Path, *, quiet: bool) -> Path:
    """A package path for ``model``: itself, or a fresh export of a run folder / checkpoint."""
    if model.is_dir() and (model / "checkpoints").is_dir() or model.suffix == ".pt":
        from exporters import export_package

        typer.echo(f"exporting run {model} first", err=True)
        return export_package(model, tmp / "run_package.zip", progress=not quiet).path
    return model


def _notes(pkg) -> str | None:
    return pkg.runner_config.validation_notes if pkg.runner_config else None


def _held_out_names(pkg, model: Path, recipe_path: Path | None) -> list[str]:
    """The ``data.held_out`` list of ``recipe_path``, else of the package's recorded training recipe."""
    from runner.errors import UserError

    if recipe_path is not None:
        from runner.recipes import load_recipe

        names, where = list(load_recipe(recipe_path).data.held_out), recipe_path
    else:
        recipe = (pkg.runner_config.recipe if pkg.runner_config else None) or {}
        names, where = list((recipe.get("data") or {}).get("held_out") or []), model
    if not names:
        raise UserError(
            "no held-out tuning images recorded (data.held_out is empty)",
            path=where,
            hint="list them in the recipe's data.held_out and pass it with --held-out-from",
        )
    return names


def _check_disjoint(data: Path, validate: Path) -> None:
    from runner.errors import UserError
    from runner.tuning import tuning_split

    if tuning_split(data).resolve() == tuning_split(validate).resolve():
        raise UserError(
            "--validate is the split tuned on: its numbers would be optimistic",
            path=validate,
            hint="tune on held-back training images (--held-out) and validate on val",
        )


def _brief(report) -> str:
    m = report.metrics
    keys = [k for k in ("accuracy@0.5", "f1@0.5", "av_ap_50_90", "aji") if k in m]
    return ", ".join(f"{k} {m[k]:.4f}" for k in keys) or "see the README"


def _excluded_from_training(pkg, names: list[str]) -> bool:
    """Whether the package's own recipe held ``names`` back from the weight updates."""
    recipe = (pkg.runner_config.recipe if pkg.runner_config else None) or {}
    recorded = set((recipe.get("data") or {}).get("held_out") or [])
    return bool(names) and set(names) <= recorded

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
    from exporters.retune import RetuneOptions, retune_package
    from runner.errors import UserError
    from runner.parsing import parse_params

    notes_text = None
    if notes is not None:
        if not notes.is_file():
            raise UserError("notes file not found", path=notes, hint="give a Markdown file to --notes")
        notes_text = notes.read_text(encoding="utf-8").strip() or None
    options = RetuneOptions(
        metric=metric,
        method=postprocess,
        params=parse_params(param),
        grid={k: v if isinstance(v, list) else [v] for k, v in parse_params(grid).items()},
        rounds=rounds,
        tta=tta,
        device=device,
        trust_code=trust_code,
        max_images=max_images,
        held_out=held_out,
        held_out_from=held_out_from,
        validate=validate,
        notes=notes_text,
        overwrite=overwrite,
        progress=not quiet,
    )
    done = retune_package(model, data, out, options, echo=lambda text, status: typer.echo(text, err=status))
    result = done.search
    changed = result.changed or "the same params"
    typer.echo(f"{metric}: {result.default_score:.4f} -> {result.best_score:.4f} with {changed}")
    typer.echo(f"wrote {out}")

"""``runner train``: train a U-Net from a recipe in ``model_specs/`` on a dataset folder."""

from __future__ import annotations

from pathlib import Path

import typer

from runner.cli._app import command


@command("train")
def train_cmd(
    spec: Path = typer.Argument(..., help="Recipe YAML, e.g. model_specs/unet2d_bcd_nuclei.yaml."),
    data: Path = typer.Option(
        ...,
        "--data",
        "-d",
        help="Dataset folder: train/{x,y} (+ val/{x,y}), or one "
        "folder with x/ and y/ split by data.val_fraction.",
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder (new, or the one to --resume)."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | cuda:N."),
    iterations: int = typer.Option(None, "--iterations", min=1, help="Override training.iterations."),
    resume: bool = typer.Option(
        False, "--resume", help="Continue the run in --out from checkpoints/last.pt."
    ),
    seed: int = typer.Option(None, "--seed", min=0, help="Override training.seed (new runs only)."),
    threads: int = typer.Option(
        None,
        "--threads",
        min=1,
        help="Override training.threads (CPU threads for torch; "
        "on a CPU shared with other jobs, 1 is often fastest).",
    ),
    max_minutes: float = typer.Option(
        None,
        "--max-minutes",
        min=0.001,
        help="Wall-time budget of this call: when it runs out, checkpoints and charts are written and "
        "the run stops (continue with --resume).",
    ),
    checkpoint_minutes: float = typer.Option(
        None,
        "--checkpoint-minutes",
        min=0.001,
        help="Also write checkpoints/last.pt whenever this many minutes have passed since the last one.",
    ),
    amp: bool = typer.Option(
        None,
        "--amp/--no-amp",
        help="Override training.amp (mixed precision on CUDA: bfloat16 autocast, or float16 with loss "
        "scaling where bfloat16 is missing; no effect on CPU).",
    ),
    init_from: Path = typer.Option(
        None,
        "--init-from",
        help="Start a new run from earlier weights instead of random ones (fine-tuning): a run folder, "
        "a .pt checkpoint or a model package with pytorch_state_dict weights; they must fit the recipe's "
        "model. Only tensors are read, no code runs.",
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars."),
) -> None:
    """Train a model from a recipe; writes checkpoints, train_log.csv and charts into the run folder.

    Example: runner train model_specs/unet2d_bcd_nuclei.yaml --data data/dsb2018 --out runs/bcd
    """
    import warnings

    from runner.recipes import load_recipe
    from runner.training import train

    recipe = load_recipe(spec)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        result = train(
            recipe,
            data,
            out,
            device=device,
            resume=resume,
            iterations=iterations,
            seed=seed,
            threads=threads,
            progress=progress,
            max_minutes=max_minutes,
            checkpoint_minutes=checkpoint_minutes,
            amp=amp,
            init_from=init_from,
        )
    for w in caught:
        if issubclass(w.category, UserWarning) and "runner" in str(w.filename):
            typer.echo(f"warning: {w.message}", err=True)
    best = (
        "no validation"
        if result.best_value is None
        else (f"best {result.metric} {result.best_value:.4f} at iteration {result.best_iteration}")
    )
    if result.interrupted:
        typer.echo(
            f"interrupted at iteration {result.iteration}/{result.total_iterations}; checkpoint saved. "
            f"Continue with: runner train {spec} --data {data} --out {out} --resume",
            err=True,
        )
        raise typer.Exit(130)
    if result.budget_reached:
        typer.echo(
            f"wall-time budget of {max_minutes:g} min reached at iteration "
            f"{result.iteration}/{result.total_iterations}; checkpoint saved. "
            f"Continue with: runner train {spec} --data {data} --out {out} --resume",
            err=True,
        )
    why = " (early stopping)" if result.stopped_early else ""
    typer.echo(
        f"trained {result.iteration}/{result.total_iterations} iterations in {result.seconds:.0f} s{why}; "
        f"{best}; run folder {out}"
    )

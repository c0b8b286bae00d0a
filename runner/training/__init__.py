"""Training U-Nets from recipes, and loading trained runs for inference.

Train (what ``runner train`` does)::

    >>> from runner.recipes import load_recipe
    >>> from runner.training import train
    >>> result = train(load_recipe("model_specs/unet2d_bcd_nuclei.yaml"), "data/dsb2018", "runs/bcd")
    >>> result.best_value, result.best_iteration

Use a trained run from Python (what the exporter and ``runner tune`` do)::

    >>> from runner.training import load_run
    >>> run = load_run("runs/bcd")                   # best checkpoint, else last; or a path to a .pt file
    >>> run.model                         # torch module in eval mode: model(x) -> activated outputs
    >>> run.recipe                                    # the resolved Recipe
    >>> run.meta.target_code, run.meta.channel_names, run.meta.halo, run.meta.size_rule
    >>> out = run.predict(raw_image)      # (K, *spatial): normalised like training, padded to a valid size

The run folder holds ``recipe.yaml``, ``checkpoints/last.pt`` and ``checkpoints/best.pt`` (see
:mod:`runner.training.checkpoints` for their content), ``train_log.csv`` and ``charts/{loss,val_metric}.png``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from runner.training.checkpoints import LoadedRun, find_checkpoint, load_checkpoint, load_run, model_meta

if TYPE_CHECKING:
    from runner.recipes import Recipe
    from runner.training.loop import TrainResult


def check_postprocessing(recipe: Recipe) -> None:
    """Fail early when the recipe's post-processor is unknown, its params invalid, or its channels wrong."""
    if recipe.validation.metric == "loss":
        return
    from runner.errors import UserError
    from runner.postprocessing import get_postprocessor

    pp = get_postprocessor(recipe.postprocessing.name)
    pp.make_params(recipe.postprocessing.params)
    n = recipe.n_code_channels
    if pp.n_channels is not None and pp.n_channels != n:
        raise UserError(
            f"post-processor {pp.name!r} reads {pp.n_channels} channel(s) ({pp.code}) but target code "
            f"{recipe.targets.code} has {n}",
            hint="pick a post-processor matching targets.code",
        )


def _apply_overrides(
    recipe: Recipe,
    *,
    iterations: int | None,
    seed: int | None,
    threads: int | None = None,
    amp: bool | None = None,
) -> Recipe:
    from runner.recipes import merge, recipe_from_dict, recipe_to_dict

    override: dict = {"training": {}}
    if iterations is not None:
        override["training"].update(iterations=iterations, epochs=None)
    if seed is not None:
        override["training"]["seed"] = seed
    if threads is not None:
        override["training"]["threads"] = threads
    if amp is not None:
        override["training"]["amp"] = amp
    if not override["training"]:
        return recipe
    return recipe_from_dict(merge(recipe_to_dict(recipe), override), source="command-line overrides")


def train(
    recipe: Recipe,
    data_dir: str | Path,
    out: str | Path,
    *,
    device: str = "auto",
    resume: bool = False,
    iterations: int | None = None,
    seed: int | None = None,
    threads: int | None = None,
    progress: bool = True,
    stop_at: int | None = None,
    max_minutes: float | None = None,
    checkpoint_minutes: float | None = None,
    amp: bool | None = None,
    init_from: str | Path | None = None,
) -> TrainResult:
    """Train ``recipe`` on ``data_dir`` (``train/`` + ``val/``, or one folder split by ``data.val_fraction``).

    Parameters
    ----------
    recipe : the training recipe. With ``resume=True`` the run's own stored recipe is used instead (a warning
        names the keys in which they differ).
    data_dir : dataset folder with ``<split>/x`` images and ``<split>/y`` instance labels.
    out : run folder; must be absent or empty for a new run.
    device : ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
    resume : continue from ``out/checkpoints/last.pt``; ends with the same weights as an uninterrupted run.
    iterations, seed, threads : override ``training.iterations`` / ``training.seed`` (new runs only) /
        ``training.threads``.
    progress : show progress bars on stderr.
    stop_at : stop (resumably) once this iteration is reached, as if interrupted.
    max_minutes : wall-time budget of this call: stop resumably (last.pt + charts written) when it runs out.
    checkpoint_minutes : also write last.pt whenever this many minutes have passed since the last write.
    amp : override ``training.amp`` (mixed precision on CUDA: bfloat16, else float16 with loss scaling).
    init_from : start a new run from these weights (run folder, ``.pt`` checkpoint or model package with
        ``pytorch_state_dict`` weights; see :mod:`runner.training.init`) instead of a random initialisation.
    """
    from runner.errors import UserError
    from runner.training.checkpoints import load_checkpoint as _load
    from runner.training.data import load_datasets
    from runner.training.init import load_initial_weights, read_initial_weights
    from runner.training.loop import Trainer, write_run_recipe
    from runner.training.setup import prepare_run_dir, resolve_device, torch_threads

    out = Path(out)
    if resume and init_from is not None:
        raise UserError(
            "--init-from starts a new run; a resumed run continues from its own checkpoint",
            hint="drop --init-from, or start a new --out",
        )
    prepare_run_dir(out, resume=resume)
    initial = None if init_from is None else read_initial_weights(init_from)
    ckpt = None
    if resume:
        ckpt = _load(out / "checkpoints" / "last.pt")
        recipe = _resumed_recipe(recipe, ckpt, seed)
        seed = None
    recipe = _apply_overrides(recipe, iterations=iterations, seed=seed, threads=threads, amp=amp)
    dev = resolve_device(device)
    data = load_datasets(data_dir, recipe, progress=progress)
    if data.val:
        check_postprocessing(recipe)
    with torch_threads(recipe):
        trainer = Trainer(recipe, data, out, dev, progress=progress, data_dir=str(data_dir))
        if ckpt is not None:
            _check_same_data(ckpt, trainer)
            trainer.restore(ckpt)
        if initial is not None:
            load_initial_weights(trainer.model, *initial)
            trainer.meta["init_from"] = initial[1]
        if not resume:
            (out / "checkpoints").mkdir(parents=True, exist_ok=True)
            (out / "charts").mkdir(exist_ok=True)
        write_run_recipe(out, recipe)
        return trainer.run(stop_at=stop_at, max_minutes=max_minutes, checkpoint_minutes=checkpoint_minutes)


def _resumed_recipe(given: Recipe | None, ckpt: dict, seed: int | None) -> Recipe:
    import warnings

    from runner.recipes import recipe_from_dict, recipe_to_dict

    stored = recipe_from_dict(ckpt["recipe"], source="checkpoints/last.pt")
    if given is not None:
        a, b = recipe_to_dict(given), recipe_to_dict(stored)
        diff = _diff_keys(a, b)
        diff = [k for k in diff if k not in ("training.iterations", "training.epochs")]
        if diff:
            warnings.warn(
                f"resuming with the run's own recipe; the given recipe differs in: {', '.join(diff[:8])}",
                stacklevel=3,
            )
    if seed is not None and seed != stored.training.seed:
        warnings.warn(
            f"--seed {seed} ignored when resuming (the run uses seed {stored.training.seed})", stacklevel=3
        )
    return stored


def _diff_keys(a, b, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b), key=str):
            out += _diff_keys(a.get(k), b.get(k), f"{prefix}{k}.")
        return out
    return [] if a == b else [prefix.rstrip(".")]


def _check_same_data(ckpt: dict, trainer) -> None:
    from runner.errors import UserError

    stored = ckpt.get("data", {}).get("train_images")
    now = trainer.meta["data"]["train_images"]
    if stored is not None and list(stored) != list(now):
        raise UserError(
            "the training images differ from those the run started with; resuming would not "
            "reproduce the run",
            hint="resume with the same --data folder",
        )


__all__ = [
    "LoadedRun",
    "check_postprocessing",
    "find_checkpoint",
    "load_checkpoint",
    "load_run",
    "model_meta",
    "train",
]

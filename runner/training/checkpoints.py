"""Checkpoints (``checkpoints/last.pt``, ``checkpoints/best.pt``) and loading a trained run for inference.

A checkpoint is a plain dict that ``torch.load(path, weights_only=True)`` reads (tensors, numbers, strings,
lists, dicts only):

``format``, ``iteration``, ``total_iterations``, ``model_state``, ``optimizer_state``, ``scheduler_state``,
``scaler_state`` (or None), ``rng`` (``numpy``: the sampling generator's state, ``torch``/``torch_cuda``:
torch generator states), ``best`` (``metric``, ``value``, ``iteration``, ``rounds_without_improvement``),
``validation_pending`` (a validation round was due but interrupted), ``history`` (rows of train_log.csv),
``recipe`` (the resolved recipe as a dict), and the metadata of :func:`model_meta`: ``target_code``,
``channel_specs``, ``channel_names``, ``activations``, ``preprocessing`` (recipe form and bioimage.io form),
``architecture`` (``module``, ``class_name``, ``kwargs``), ``size_rule``, ``halo``, ``receptive_field``,
plus ``data`` (data folder and image names) and ``versions``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from runner.contracts import RunMeta, parse_run_meta
from runner.errors import UserError
from runner.recipes import Recipe, recipe_from_dict, recipe_to_dict

FORMAT = RunMeta.current_format()


def model_meta(recipe: Recipe) -> dict:
    """Everything a consumer needs to rebuild and run the network of ``recipe`` (JSON-able)."""
    from runner.models import get_architecture, halo, model_kwargs, receptive_field, size_rule
    from runner.targets import channel_specs
    from runner.training.preprocess import bioimageio_kwargs

    arch = get_architecture(recipe.model.name)
    rule = size_rule(recipe.model, recipe.dims)
    specs = [asdict(s) for s in channel_specs(recipe.targets.code, recipe.targets.options)]
    for s in specs:
        s["value_range"] = list(s["value_range"]) if s["value_range"] is not None else None
    return {
        "target_code": recipe.targets.code,
        "channel_specs": specs,
        "channel_names": recipe.channel_names(),
        "activations": recipe.activations(),
        "n_classes": recipe.targets.n_classes,
        "preprocessing": {
            "recipe": recipe.preprocessing.model_dump(mode="json"),
            "bioimageio": bioimageio_kwargs(recipe.preprocessing, recipe.dims),
        },
        "architecture": {
            "name": arch.name,
            "module": arch.module,
            "class_name": arch.class_name,
            "kwargs": model_kwargs(
                recipe.model,
                ndim=recipe.dims,
                in_channels=recipe.input_channels,
                activations=recipe.activations(),
            ),
        },
        "size_rule": {"min": list(rule.min), "step": list(rule.step)},
        "halo": list(halo(recipe.model, recipe.dims, round_to_step=True)),
        "receptive_field": list(receptive_field(recipe.model, recipe.dims)),
        "postprocessing": recipe.postprocessing.model_dump(mode="json"),
    }


def save_checkpoint(path: Path, state: dict) -> None:
    """Write ``state`` (see the module docstring) atomically."""
    from runner.io import atomic_path

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, **state}, tmp)


def load_checkpoint(path: str | Path) -> dict:
    """Read a checkpoint with ``weights_only=True`` (no arbitrary pickles), on the CPU.

    Its metadata is validated as a :class:`runner.contracts.RunMeta` (a checkpoint of a newer bmz-runner is
    refused with one line).
    """
    path = Path(path)
    if not path.is_file():
        raise UserError("checkpoint not found", path=path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated, not a torch file, or holding objects weights_only refuses
        from runner.safety.trust import describe_load_error

        raise UserError(
            f"cannot read checkpoint ({describe_load_error(exc)})",
            path=path,
            hint="is it a checkpoint written by `runner train`?",
        ) from None
    if not isinstance(ckpt, dict) or not str(ckpt.get("format", "")).startswith(RunMeta.KIND + "/"):
        raise UserError(
            "not a bmz-runner checkpoint", path=path, hint="expected a file written by `runner train`"
        )
    parse_run_meta(ckpt, path=path)
    return ckpt


def find_checkpoint(run: str | Path, *, which: str = "best") -> Path:
    """The checkpoint file of ``run`` (a run folder or a ``.pt`` file); ``which`` is 'best' or 'last'."""
    run = Path(run)
    if run.is_file():
        return run
    if not run.is_dir():
        raise UserError("run folder or checkpoint not found", path=run)
    order = ["best.pt", "last.pt"] if which == "best" else ["last.pt"]
    for name in order:
        if (run / "checkpoints" / name).is_file():
            return run / "checkpoints" / name
    raise UserError(
        "run folder has no checkpoint (checkpoints/best.pt or last.pt)",
        path=run,
        hint="train first with `runner train`",
    )


@dataclass
class LoadedRun:
    """A trained network ready for inference, with its recipe and checkpoint metadata."""

    model: torch.nn.Module
    """The network in eval mode; ``model(x)`` gives activated outputs, ``model.logits(x)`` raw ones."""
    recipe: Recipe
    meta: RunMeta
    """The checkpoint without its tensors: iteration, best, history, :func:`model_meta` fields, data."""
    path: Path

    def predict(self, image, *, tile: tuple[int, ...] | None = None, device: str = "cpu"):
        """Outputs ``(K, *spatial)`` for a raw image ``(C, *spatial)`` (normalised as in training)."""
        from runner.models import size_rule
        from runner.training.inference import predict
        from runner.training.preprocess import normalize

        rule = size_rule(self.recipe.model, self.recipe.dims)
        halo = tuple(self.meta.halo) if tile is not None else None
        self.model.to(device)
        return predict(
            self.model,
            normalize(image, self.recipe.preprocessing),
            rule=rule,
            device=device,
            tile=tile,
            halo=halo,
        )


def load_run(run: str | Path, *, which: str = "best", device: str = "cpu") -> LoadedRun:
    """Load a trained network from a run folder (its best checkpoint, else the last) or a checkpoint file.

    Returns a :class:`LoadedRun` with ``model`` (eval mode, on ``device``), ``recipe`` (:class:`Recipe`) and
    ``meta`` (target code, channel specs, preprocessing, architecture kwargs, size rule, halo, history, ...).
    """
    path = find_checkpoint(run, which=which)
    ckpt = load_checkpoint(path)
    recipe = recipe_from_dict(ckpt["recipe"], source=path)
    model = recipe.build_model()
    model.load_state_dict(ckpt["model_state"])
    model.to(device).eval()
    return LoadedRun(model=model, recipe=recipe, meta=parse_run_meta(ckpt, path=path), path=path)


def recipe_state(recipe: Recipe) -> dict:
    """The resolved recipe as stored in checkpoints."""
    return recipe_to_dict(recipe)

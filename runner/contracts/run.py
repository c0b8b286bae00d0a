"""A training run's checkpoint metadata: :class:`RunMeta`, written by ``runner train`` into every checkpoint
(beside the tensors) and read by the exporter, ``runner tune`` on a run folder and resuming.

It holds everything a consumer needs to rebuild and run the network without the training code's internals:
the target code and channel specs, the architecture and its kwargs, the size rule and halo, the
pre-processing, the post-processor, the training state (iteration, best, history) and the data it saw.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError

from runner.contracts.package import PostprocessingConfig, SizeRuleInfo
from runner.contracts.versioning import Contract, Versioned, describe_error


class BestInfo(Contract):
    """The best validation score so far and when it was reached."""

    metric: str | None = None
    value: float | None = None
    iteration: int | None = None
    rounds_without_improvement: int = 0


class ArchitectureInfo(Contract):
    """The network: registered name, class and the kwargs that rebuild it."""

    name: str
    module: str
    class_name: str
    kwargs: dict[str, Any] = Field(default_factory=dict)


class PreprocessingInfo(Contract):
    """The input normalisation, as the recipe writes it and as bioimage.io pre-processing."""

    recipe: dict[str, Any]
    bioimageio: dict[str, Any]


class RunData(Contract):
    """The dataset a run was trained on: its folder, the splits and the image names of each."""

    data_dir: str | None = None
    train: str | None = None
    val: str | None = Field(default=None, description="A folder, or '<fraction> of train'.")
    train_images: list[str] = Field(default_factory=list)
    val_images: list[str] = Field(default_factory=list)


class RunMeta(Versioned):
    """A checkpoint without its tensors (model, optimizer, scheduler, scaler and RNG states)."""

    KIND = "bmz-runner.checkpoint"
    VERSION = 1

    iteration: int = 0
    total_iterations: int | None = None
    best: BestInfo = Field(default_factory=BestInfo)
    validation_pending: bool = False
    pending_log: list[dict[str, Any]] = Field(default_factory=list)
    history: list[dict[str, Any]] = Field(default_factory=list, description="Rows of train_log.csv.")
    elapsed_s: float = 0.0
    recipe: dict[str, Any] = Field(description="The resolved recipe (runner.recipes.recipe_to_dict).")
    versions: dict[str, str] = Field(default_factory=dict, description="torch and runner versions.")
    target_code: str
    channel_specs: list[dict[str, Any]]
    channel_names: list[str]
    activations: list[str]
    n_classes: int = 0
    preprocessing: PreprocessingInfo
    architecture: ArchitectureInfo
    size_rule: SizeRuleInfo
    halo: list[int]
    receptive_field: list[int]
    postprocessing: PostprocessingConfig
    data: RunData = Field(default_factory=RunData)
    init_from: str | None = Field(
        default=None, description="Where the initial weights came from (runner train --init-from), else None."
    )


TENSOR_KEYS = frozenset({"model_state", "optimizer_state", "scheduler_state", "scaler_state", "rng"})
"""Checkpoint entries that are tensors or RNG states, not metadata."""


def parse_run_meta(checkpoint: dict[str, Any], *, path: str | Path | None = None) -> RunMeta:
    """The :class:`RunMeta` of a checkpoint dict (its tensor entries skipped).

    Raises
    ------
    UserError
        A missing or mistyped field, or a checkpoint written by a newer bmz-runner.
    """
    from runner.errors import UserError

    try:
        return RunMeta.model_validate({k: v for k, v in checkpoint.items() if k not in TENSOR_KEYS})
    except ValidationError as exc:
        message, hint = describe_error(
            exc, "checkpoint metadata", fix="is it a checkpoint written by `runner train`?"
        )
        raise UserError(message, path=path, hint=hint) from None

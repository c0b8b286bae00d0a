"""``config.runner`` of a bioimage.io package: :class:`RunnerConfig`, written by the exporter and ``runner
tune``, read by ``runner predict | tune | test``.

Only ``postprocessing`` (and ``targets``) matter to run the package; the rest is provenance a reader needs to
trust and reproduce it. Every field is optional so a hand-written block (``{targets: BC, postprocessing:
{name: threshold_cc}}``) and every package already shipped load.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator

from runner.contracts.versioning import Contract, Versioned, describe_error


class PostprocessingConfig(Contract):
    """An instance post-processor by name with its params."""

    name: str = Field(description="Registered post-processor (`runner postprocess --list`).")
    params: dict[str, Any] = Field(default_factory=dict, description="Its params; defaults fill the rest.")

    @field_validator("params", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return {} if value is None else value


class TargetsInfo(Contract):
    """What the output channels mean: the target code, one spec per channel, the target options."""

    code: str = Field(description="Target code of the output channels, e.g. 'BCD' or 'PPP'.")
    channels: list[dict[str, Any]] = Field(
        default_factory=list, description="Per channel: name, kind, activation, description, value_range."
    )
    options: dict[str, Any] = Field(default_factory=dict, description="The recipe's target options.")
    n_classes: int = Field(default=0, ge=0, description="Semantic classes after the code channels.")


class SizeRuleInfo(Contract):
    """Valid spatial input sizes: ``min + n * step`` per axis."""

    min: list[int]
    step: list[int]


class TrainingInfo(Contract):
    """Which checkpoint of which training run the weights are."""

    checkpoint: str | None = None
    iteration: int | None = None
    total_iterations: int | None = None
    best: dict[str, Any] | None = None
    data_dir: str | None = None
    n_train_images: int | None = None
    n_val_images: int | None = None
    versions: dict[str, str] | None = None


class ValidationInfo(Contract):
    """The package's scores on annotated images (what the README's ``# Validation`` section shows)."""

    role: str | None = None
    source: str | None = None
    n_images: int | None = None
    images: list[str] = Field(default_factory=list)
    metrics: dict[str, float | None] = Field(default_factory=dict)
    weights: str | None = None
    method: str | None = None
    per_threshold: list[dict[str, Any]] | None = None


class TunedOn(Contract):
    """Provenance of params chosen by ``runner tune``."""

    data: str
    images: list[str] = Field(default_factory=list)
    metric: str
    score: float | None = None
    default_score: float | None = None
    n_trials: int | None = None
    tta: bool = False
    searched: dict[str, list[Any]] = Field(default_factory=dict)
    held_out: bool | None = Field(
        default=None,
        description="Tuned on a recipe's held-out training images: True when the weights never saw them, "
        "False when they did; None for any other images.",
    )
    date: str | None = None


class TestTensorInfo(Contract):
    """Where the package's test input was cut from."""

    __test__ = False  # not a pytest class

    image: str | None = None
    origin: list[int] = Field(default_factory=list)
    shape: list[int] = Field(default_factory=list)
    padded: list[int] = Field(default_factory=list)


class RunnerConfig(Versioned):
    """``config.runner``: how to get instances from the package's outputs, and where the package came from.

    Fields are declared in the order the exporter writes them (then what ``runner tune`` adds), so a dump
    reads like the packages already shipped. A new field is optional with a default (see
    :mod:`runner.contracts.versioning` for when to bump :attr:`VERSION` instead).
    """

    KIND = "bmz-runner.package"
    VERSION = 1

    version: str | None = Field(default=None, description="bmz-runner version that wrote the package.")
    targets: TargetsInfo | None = None
    channel_names: list[str] | None = None
    postprocessing: PostprocessingConfig | None = None
    resolution: list[float] | None = Field(default=None, description="Voxel size (z, y, x) of the targets.")
    voxel_size: list[float] | None = Field(
        default=None,
        description="Physical voxel size (z,) y, x in micrometres the model was trained at (the recipe's "
        "data.voxel_size); `runner predict` rescales inputs of another voxel size. None: cannot rescale.",
    )
    input_tensor: str | None = None
    output_tensor: str | None = Field(default=None, description="The output the post-processor reads.")
    size_rule: SizeRuleInfo | None = None
    halo: list[int] | None = None
    receptive_field: list[int] | None = None
    training: TrainingInfo | None = None
    validation: ValidationInfo | None = None
    test_tensor: TestTensorInfo | None = None
    recipe: dict[str, Any] | None = Field(default=None, description="The resolved training recipe.")
    tuned_on: TunedOn | None = Field(default=None, description="Set by `runner tune`.")
    test_time_augmentation: bool = Field(
        default=False, description="Average over mirrored inputs: the params were tuned on averaged outputs."
    )

    @field_validator("targets", mode="before")
    @classmethod
    def _code_only(cls, value: Any) -> Any:
        return {"code": value} if isinstance(value, str) else value

    @field_validator("postprocessing", mode="before")
    @classmethod
    def _name_only(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"name": value}
        return value or None

    @property
    def target_code(self) -> str | None:
        return None if self.targets is None else self.targets.code

    @property
    def validation_notes(self) -> str | None:
        """The training recipe's ``export.validation_notes``, if any."""
        export = (self.recipe or {}).get("export") or {}
        return export.get("validation_notes") or None


def parse_runner_config(block: Any, *, path: str | Path | None = None) -> RunnerConfig | None:
    """The :class:`RunnerConfig` of a package's ``config.runner`` mapping (None when absent).

    Raises
    ------
    UserError
        Not a mapping, a field of the wrong type, or a package written by a newer bmz-runner.
    """
    from runner.errors import UserError

    if block is None:
        return None
    if not isinstance(block, dict):
        raise UserError("config.runner must be a mapping", path=path)
    try:
        return RunnerConfig.model_validate(block)
    except ValidationError as exc:
        message, hint = describe_error(
            exc, "config.runner", fix="re-export or re-tune the package with bmz-runner"
        )
        raise UserError(message, path=path, hint=hint) from None


def dump_runner_config(config: RunnerConfig) -> dict[str, Any]:
    """``config`` as the plain mapping written into the rdf (fields that were never set left out)."""
    return config.model_dump(mode="json", exclude_unset=True)

"""Export options (pydantic, unknown keys rejected) and the state shared by the steps of one export."""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from runner.contracts import RunMeta

NAME_CHARS = set(string.ascii_letters + string.digits + "_+- ()")
"""Characters bioimage.io allows in a model name (5 to 128 of them)."""
INPUT_ID = "raw"
OUTPUT_ID = "prediction"


class ExportOptions(BaseModel):
    """How ``runner export`` builds a package from a trained run."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    weights: list[str] = Field(
        default_factory=lambda: ["pytorch_state_dict", "torchscript", "onnx"],
        description="Weight formats to write: torchscript, onnx, pytorch_state_dict (alias state_dict). "
        "The first of pytorch_state_dict, torchscript, onnx present is the parent of the others.",
    )
    name: str | None = Field(
        default=None,
        description="Model name shown by bioimage.io tools (5-128 letters, digits, spaces, _ + - ( )); "
        "default: the recipe name.",
    )
    checkpoint: Literal["best", "last"] = Field(
        default="best", description="Checkpoint of a run folder to export: best (else last) or last."
    )
    data_dir: Path | None = Field(
        default=None,
        description="Where the run's dataset folder lives now (default: where it was during training); "
        "test tensors and validation metrics come from its validation images.",
    )
    opset: int = Field(default=17, ge=7, le=18, description="ONNX opset (deepImageJ reads 8 to 18).")
    max_validation_images: int | None = Field(
        default=None,
        ge=1,
        description="Score at most this many validation images for the README; null = all.",
    )
    relative_tolerance: float = Field(
        default=1e-3, ge=0, le=1, description="Reproducibility: relative tolerance of the test outputs."
    )
    absolute_tolerance: float = Field(
        default=1e-3, ge=0, description="Reproducibility: absolute tolerance of the test outputs."
    )
    mismatched_elements_per_million: float = Field(
        default=100,
        ge=0,
        le=1_000_000,
        description="Reproducibility: elements per million allowed outside tolerance.",
    )
    overwrite: bool = Field(default=False, description="Replace an existing package at the output path.")
    progress: bool = Field(default=False, description="Show progress bars on stderr.")

    @field_validator("weights", mode="before")
    @classmethod
    def _formats(cls, value: Any) -> list[str]:
        from exporters.weights import parse_formats
        from runner.errors import UserError

        try:
            return parse_formats(value)
        except UserError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is None:
            return value
        bad = sorted(set(value) - NAME_CHARS)
        if bad or not 5 <= len(value) <= 128:
            raise ValueError(
                f"model name {value!r} must be 5 to 128 letters, digits, spaces or _ + - ( )"
                + (f" (not {''.join(bad)!r})" if bad else "")
            )
        return value


def display_name(recipe_name: str) -> str:
    """A bioimage.io-valid model name from a recipe name (other characters become '-', padded to 5)."""
    name = re.sub(r"[^A-Za-z0-9_+\- ()]", "-", recipe_name)
    name = name if len(name) >= 5 else name + "-model"
    return name[:128]


@dataclass
class ExportContext:
    """Everything the documentation and rdf steps read, filled in step by step."""

    folder: Path
    """Build folder: every file of the package is written here first."""
    options: ExportOptions
    run: Any
    """:class:`runner.training.LoadedRun`."""
    name: str
    package_name: str = "model.zip"
    """File (or folder) name of the package, as the README's commands refer to it."""
    weights: dict = field(default_factory=dict)
    """Format -> :class:`exporters.weights.WeightsFile`."""
    sample: Any = None
    """:class:`exporters.samples.TestSample`."""
    instances: Any = None
    """Instances of the test crop (post-processor on the test output)."""
    validation: Any = None
    """:class:`exporters.evaluation.ValidationReport`."""
    input_min: tuple[int, ...] = ()
    input_step: tuple[int, ...] = ()
    halo: tuple[int, ...] = ()
    files: dict[str, Path] = field(default_factory=dict)
    """Role (``cover``, ``documentation``, ``test_input``, ...) -> file in :attr:`folder`."""

    @property
    def recipe(self):
        return self.run.recipe

    @property
    def meta(self) -> RunMeta:
        return self.run.meta

    @property
    def ndim(self) -> int:
        return int(self.run.recipe.dims)

    @property
    def spatial_axes(self) -> list[str]:
        return ["z", "y", "x"][-self.ndim :]

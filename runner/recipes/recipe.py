"""The whole training recipe (one YAML file in ``model_specs/``) and its cross-section checks."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from runner.models import UNetConfig, size_rule
from runner.recipes.sections import (
    AugmentationSection,
    CosineSchedule,
    DataSection,
    ExportSection,
    LossSection,
    OptimizerSection,
    PostprocessingSection,
    Preprocessing,
    ScaleRange,
    Schedule,
    Section,
    TargetsSection,
    TrainingSection,
    ValidationSection,
)

ModelSection = UNetConfig
"""The network sections a recipe may hold (a union of configs with a Literal ``name`` as more are added); the
registry record of an architecture is :class:`runner.models.Architecture`."""


class Recipe(Section):
    """A training recipe: data, targets, network, optimisation, validation, post-processing, export info."""

    name: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        description="Short identifier of the recipe "
        "(letters, digits, '_', '-', '.'); names the exported model.",
    )
    description: str = Field(default="", description="What the recipe is for, in one or two sentences.")
    dims: Literal[2, 3] = Field(description="Spatial dimensions of the images: 2 (Y, X) or 3 (Z, Y, X).")
    input_channels: int = Field(default=1, ge=1, le=64, description="Channels of the input images.")
    targets: TargetsSection = Field(default_factory=TargetsSection, description="What the network learns.")
    model: ModelSection = Field(default_factory=UNetConfig, description="The network (see runner.models).")
    preprocessing: Preprocessing = Field(
        default_factory=lambda: ScaleRange(name="scale_range"),
        description="Input normalisation, applied per image as bioimage.io "
        "defines it (exported into the package).",
    )
    data: DataSection = Field(description="Patch size and sampling.")
    training: TrainingSection = Field(description="Length, batch size, seed, devices.")
    optimizer: OptimizerSection = Field(default_factory=OptimizerSection, description="AdamW settings.")
    schedule: Schedule = Field(
        default_factory=lambda: CosineSchedule(name="cosine"), description="Learning-rate schedule."
    )
    augmentation: AugmentationSection = Field(
        default_factory=AugmentationSection, description="Random transforms of training patches."
    )
    loss: LossSection = Field(default_factory=LossSection, description="Per-channel losses.")
    validation: ValidationSection = Field(default_factory=ValidationSection, description="Validation rounds.")
    postprocessing: PostprocessingSection = Field(
        default_factory=PostprocessingSection, description="Instance post-processor and its params."
    )
    export: ExportSection = Field(default_factory=ExportSection, description="Package metadata.")

    @model_validator(mode="after")
    def _consistent(self):
        nd = self.dims
        if len(self.data.patch) != nd:
            raise ValueError(f"data.patch has {len(self.data.patch)} values but dims is {nd}")
        try:
            rule = size_rule(self.model, nd)
        except ValueError as exc:
            raise ValueError(f"model.pooling: {exc}") from None
        if not rule.valid(self.data.patch):
            hint = list(rule.round_up(self.data.patch))
            raise ValueError(
                f"data.patch {list(self.data.patch)} must be multiples of the network step "
                f"{list(rule.step)} (model.depth {self.model.depth}); try {hint}"
            )
        tile = self.validation.tile
        if tile is not None and (len(tile) != nd or not rule.valid(tile)):
            raise ValueError(f"validation.tile {list(tile)} must have {nd} multiples of {list(rule.step)}")
        res = self.targets.options.resolution
        if res is not None and len(res) != nd:
            raise ValueError(f"targets.options.resolution has {len(res)} values but dims is {nd}")
        vox = self.data.voxel_size
        if vox is not None and len(vox) != nd:
            raise ValueError(f"data.voxel_size has {len(vox)} values but dims is {nd}")
        return self

    @property
    def n_code_channels(self) -> int:
        """Channels of the target code (the class head's channels come after them)."""
        from runner.targets import channel_specs

        return len(channel_specs(self.targets.code, self.targets.options))

    def activations(self) -> list[str]:
        """Activation of every output channel of the network."""
        from runner.models import output_activations

        return output_activations(
            self.targets.code, options=self.targets.options, n_classes=self.targets.n_classes
        )

    def channel_names(self) -> list[str]:
        """Names of every output channel: the code's channels, then ``class_0..class_{n-1}``."""
        from runner.targets import channel_specs

        names = [s.name for s in channel_specs(self.targets.code, self.targets.options)]
        if self.targets.n_classes > 2:
            names += [f"class_{i}" for i in range(self.targets.n_classes)]
        return names

    def total_iterations(self, n_train_images: int) -> int:
        """Optimizer steps: ``training.iterations``, or epochs x ceil(images / batch)."""
        t = self.training
        if t.iterations is not None:
            return t.iterations
        assert t.epochs is not None, "the training section has iterations or epochs (validated)"
        return t.epochs * max(1, -(-n_train_images // t.batch_size))

    def build_model(self):
        """The network of this recipe (torch ``nn.Module``)."""
        from runner.models import build_model

        return build_model(
            self.model, ndim=self.dims, in_channels=self.input_channels, activations=self.activations()
        )

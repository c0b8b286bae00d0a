"""Sections of a training recipe (pydantic models; every field documented where it is declared)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from runner.metrics.names import MATCHING_FIELDS, parse_metric
from runner.targets import GradientAnomalyOptions, TargetOptions


class Section(BaseModel):
    """Base of every recipe section: unknown keys are rejected, assignments validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


# ------------------------------------------------------------------------------------------------- targets


class TargetsSection(Section):
    """What the network learns: the target channels and their weights."""

    code: str = Field(
        default="BCD",
        description="Target code naming the output channels in order (B C D M P Dv2 and "
        "combinations such as BC, BCD, BCDv2; see `runner targets --help`).",
    )
    channel_weights: list[float] | None = Field(
        default=None,
        description="Loss weight of each channel of the code, in order (e.g. [1, 1, 0.5] for BCD); "
        "null = 1 for every channel.",
    )
    options: TargetOptions = Field(
        default_factory=TargetOptions,
        description="How labels become channels "
        "(contour width/mode, distance normalisation, point radius, resolution).",
    )
    n_classes: int = Field(
        default=0,
        ge=0,
        le=256,
        description="Number of classes including background, read from the "
        "label files' second (class) channel; > 2 adds a softmax class head after the code's "
        "channels. 0 = no class head.",
    )

    @field_validator("code")
    @classmethod
    def _known_code(cls, v: str) -> str:
        from runner.errors import UserError
        from runner.targets import get_code

        try:
            get_code(v)
        except UserError as exc:
            raise ValueError(str(exc)) from None
        return v

    @field_validator("channel_weights")
    @classmethod
    def _non_negative(cls, v):
        if v is not None and any(w < 0 for w in v):
            raise ValueError("channel weights must be >= 0")
        return v

    @model_validator(mode="after")
    def _weights_match(self):
        from runner.targets import channel_specs

        n = len(channel_specs(self.code, self.options))
        if self.channel_weights is not None and len(self.channel_weights) != n:
            raise ValueError(
                f"channel_weights has {len(self.channel_weights)} values but code {self.code} "
                f"has {n} channels"
            )
        return self

    def weights(self) -> list[float]:
        """Channel weights with the default (all 1) resolved."""
        from runner.targets import channel_specs

        return list(self.channel_weights or [1.0] * len(channel_specs(self.code, self.options)))


# --------------------------------------------------------------------------------------------- preprocessing


class ZeroMeanUnitVariance(Section):
    """``(x - mean) / (std + eps)`` with mean and std of each image and channel (bioimage.io op)."""

    name: Literal["zero_mean_unit_variance"] = Field(description="Op name (bioimage.io preprocessing).")
    eps: float = Field(default=1e-6, gt=0, le=1, description="Added to the standard deviation.")


class ScaleRange(Section):
    """``(x - p_low) / (p_high - p_low + eps)`` with per-image, per-channel percentiles (bioimage.io op)."""

    name: Literal["scale_range"] = Field(description="Op name (bioimage.io preprocessing).")
    min_percentile: float = Field(default=1.0, ge=0, lt=100, description="Lower percentile, mapped to 0.")
    max_percentile: float = Field(default=99.8, gt=0, le=100, description="Upper percentile, mapped to 1.")
    eps: float = Field(default=1e-6, gt=0, le=1, description="Added to the percentile range.")

    @model_validator(mode="after")
    def _order(self):
        if self.min_percentile >= self.max_percentile:
            raise ValueError("min_percentile must be below max_percentile")
        return self


Preprocessing = Annotated[ZeroMeanUnitVariance | ScaleRange, Field(discriminator="name")]


# ------------------------------------------------------------------------------------------------------ data


class DataSection(Section):
    """How training samples are drawn from ``<data>/train`` (and ``<data>/val``)."""

    patch: tuple[int, ...] = Field(
        description="Training crop size (Z,) Y, X; multiples of the network's step (2**depth)."
    )
    val_fraction: float = Field(
        default=0.1,
        ge=0,
        lt=1,
        description="Share of the training images held out for "
        "validation when the data folder has no val/ split.",
    )
    foreground_crop: float = Field(
        default=0.8,
        ge=0,
        le=1,
        description="Probability that a crop is centred on a random "
        "foreground pixel rather than placed uniformly.",
    )
    image_sampling: Literal["uniform", "area"] = Field(
        default="area",
        description="Pick images uniformly, or in proportion to their pixel count (every pixel equally "
        "likely).",
    )
    pad_mode: Literal["reflect", "constant", "none"] = Field(
        default="reflect",
        description="Padding of images smaller than the patch (the padded region is left out of the "
        "loss); 'none' skips such images.",
    )
    axes: str | None = Field(
        default=None,
        description="Axes of the image files when their metadata does not say, e.g. 'zyx' or 'yxc'.",
    )
    voxel_size: tuple[float, ...] | None = Field(
        default=None,
        description="Physical pixel/voxel size of the training images along (Z,) Y, X in micrometres "
        "(e.g. [0.284, 0.127, 0.127]); written into the package so `runner predict --resolution` can "
        "rescale inputs of another voxel size. null = not recorded (the package cannot rescale).",
    )

    held_out: list[str] = Field(
        default_factory=list,
        description="Names (file stems) of training images held back from the weight updates for tuning "
        "the post-processing (`runner tune --held-out`), so val is never used for it; chosen once, e.g. "
        "40 images drawn with a fixed seed.",
    )

    @field_validator("voxel_size")
    @classmethod
    def _positive_voxel(cls, v):
        if v is not None and (not v or any(not (x > 0) for x in v)):
            raise ValueError("voxel_size values must be positive")
        return v


# -------------------------------------------------------------------------------------------------- training


class TrainingSection(Section):
    """Length of training, batch, seed and devices."""

    iterations: int | None = Field(
        default=None, ge=1, le=10**7, description="Optimizer steps. Give this or 'epochs'."
    )
    epochs: int | None = Field(
        default=None,
        ge=1,
        le=10**5,
        description="Alternative to 'iterations': one epoch draws "
        "as many patches as there are training images (iterations = epochs x "
        "ceil(images / batch_size)).",
    )
    batch_size: int = Field(default=8, ge=1, le=4096, description="Patches per optimizer step.")
    seed: int = Field(
        default=0, ge=0, description="Seed of every random choice (weights, crops, augmentation)."
    )
    amp: bool = Field(
        default=True, description="Mixed precision (bfloat16 autocast) on CUDA; ignored on CPU."
    )
    threads: int | None = Field(
        default=None,
        ge=1,
        le=1024,
        description="CPU threads for torch; null = the cores this process may use.",
    )
    checkpoint_every: int = Field(
        default=250,
        ge=1,
        description="Write checkpoints/last.pt every this many iterations "
        "(also at every validation and at the end).",
    )
    log_every: int = Field(
        default=10,
        ge=1,
        description="Average the training loss over this many iterations per train_log.csv row.",
    )

    @model_validator(mode="after")
    def _length(self):
        if (self.iterations is None) == (self.epochs is None):
            raise ValueError("give exactly one of training.iterations and training.epochs")
        return self


class OptimizerSection(Section):
    """The optimizer (AdamW)."""

    name: Literal["adamw"] = Field(default="adamw", description="Optimizer: AdamW (decoupled weight decay).")
    lr: float = Field(default=1e-3, gt=0, le=1, description="Peak learning rate.")
    weight_decay: float = Field(default=1e-4, ge=0, le=1, description="Decoupled weight decay.")
    betas: tuple[float, float] = Field(default=(0.9, 0.999), description="Adam moment decay rates.")
    grad_clip: float | None = Field(
        default=1.0, gt=0, description="Clip the gradient norm to this value; null = off."
    )


class ConstantSchedule(Section):
    """Constant learning rate after an optional linear warm-up."""

    name: Literal["constant"] = Field(description="Schedule name.")
    warmup: int = Field(default=0, ge=0, description="Iterations of linear warm-up from 0 to the peak rate.")


class CosineSchedule(Section):
    """Linear warm-up, then cosine decay to ``min_lr_ratio`` x peak at the last iteration."""

    name: Literal["cosine"] = Field(description="Schedule name.")
    warmup: int = Field(default=0, ge=0, description="Iterations of linear warm-up from 0 to the peak rate.")
    min_lr_ratio: float = Field(
        default=0.01, ge=0, le=1, description="Final learning rate as a fraction of the peak."
    )


class StepSchedule(Section):
    """Multiply the learning rate by ``gamma`` every ``every`` iterations (after the warm-up)."""

    name: Literal["step"] = Field(description="Schedule name.")
    warmup: int = Field(default=0, ge=0, description="Iterations of linear warm-up from 0 to the peak rate.")
    every: int = Field(default=1000, ge=1, description="Iterations between decays.")
    gamma: float = Field(default=0.5, gt=0, le=1, description="Decay factor.")


Schedule = Annotated[ConstantSchedule | CosineSchedule | StepSchedule, Field(discriminator="name")]


# -------------------------------------------------------------------------------------------- augmentation


class ElasticAug(Section):
    """Smooth random displacement field (image and targets warped alike)."""

    p: float = Field(default=0.0, ge=0, le=1, description="Probability per patch.")
    magnitude: float = Field(
        default=4.0, ge=0, le=100, description="Standard deviation of the displacement in pixels."
    )
    spacing: int = Field(
        default=32,
        ge=4,
        le=1024,
        description="Spacing in pixels of the coarse control grid (larger = smoother).",
    )


class IntensityAug(Section):
    """Random contrast and brightness: ``x * scale + shift`` (on the normalised image)."""

    p: float = Field(default=0.0, ge=0, le=1, description="Probability per patch.")
    scale: tuple[float, float] = Field(default=(0.8, 1.2), description="Range of the multiplicative factor.")
    shift: tuple[float, float] = Field(
        default=(-0.1, 0.1), description="Range of the additive offset (normalised intensity units)."
    )


class GammaAug(Section):
    """Random gamma on the patch's own min..max range."""

    p: float = Field(default=0.0, ge=0, le=1, description="Probability per patch.")
    gamma: tuple[float, float] = Field(
        default=(0.7, 1.5), description="Range of the gamma exponent (log-uniform)."
    )


class NoiseAug(Section):
    """Additive Gaussian noise."""

    p: float = Field(default=0.0, ge=0, le=1, description="Probability per patch.")
    std: tuple[float, float] = Field(
        default=(0.0, 0.05), description="Range of the noise standard deviation (normalised intensity units)."
    )


class BlurAug(Section):
    """Gaussian blur of the image (targets untouched): defocus."""

    p: float = Field(default=0.0, ge=0, le=1, description="Probability per patch.")
    sigma: tuple[float, float] = Field(default=(0.3, 1.2), description="Range of the blur sigma in pixels.")


class AugmentationSection(Section):
    """Random transforms applied to each training patch (never to validation images)."""

    flip: bool = Field(default=True, description="Random flips along every spatial axis.")
    rotate90: bool = Field(default=True, description="Random multiples of 90 degrees in the Y-X plane.")
    elastic: ElasticAug = Field(default_factory=ElasticAug, description="Elastic deformation.")
    intensity: IntensityAug = Field(default_factory=IntensityAug, description="Contrast/brightness jitter.")
    gamma: GammaAug = Field(default_factory=GammaAug, description="Gamma jitter.")
    noise: NoiseAug = Field(default_factory=NoiseAug, description="Gaussian noise.")
    blur: BlurAug = Field(default_factory=BlurAug, description="Gaussian blur.")


# ------------------------------------------------------------------------------------------------------ loss


class LossSection(Section):
    """Per-channel losses, summed with the channel weights."""

    binary: Literal["bce", "bce_dice"] = Field(
        default="bce_dice",
        description="Loss of binary channels (B C M P): binary cross-entropy, or BCE + soft Dice.",
    )
    distance: Literal["mse", "l1", "smooth_l1"] = Field(
        default="mse", description="Loss of distance channels (D Dv2)."
    )
    dice_weight: float = Field(
        default=1.0, ge=0, le=100, description="Weight of the Dice term in 'bce_dice'."
    )
    class_weight: float = Field(
        default=1.0, ge=0, le=100, description="Weight of the class head's cross-entropy."
    )
    gradient_anomaly: GradientAnomalyOptions | None = Field(
        default=None,
        description="Weight every pixel's loss by the GAInS gradient-anomaly map (touching objects "
        "weigh more); null = uniform weights.",
    )


# ------------------------------------------------------------------------------------------------ validation


class ValidationSection(Section):
    """Validation rounds: loss and instance metric on whole validation images."""

    every: int = Field(
        default=250, ge=1, description="Iterations between validation rounds (also one at the end)."
    )
    metric: str = Field(
        default="accuracy@0.5",
        description="Model selection metric, FIELD@IOU with FIELD one of "
        f"{', '.join(MATCHING_FIELDS)}, or 'loss'. Higher is better (lower for loss).",
    )
    patience: int | None = Field(
        default=None,
        ge=1,
        description="Stop after this many validation rounds without improvement; null = never stop early.",
    )
    min_delta: float = Field(default=0.0, ge=0, description="Smallest change that counts as an improvement.")
    max_images: int | None = Field(
        default=None,
        ge=1,
        description="Use at most this many validation images (the first ones in name order); null = all.",
    )
    tile: tuple[int, ...] | None = Field(
        default=None,
        description="Predict validation images in tiles of this size "
        "(with the network's halo) instead of whole; null = whole images.",
    )

    @field_validator("metric")
    @classmethod
    def _metric(cls, v: str) -> str:
        parse_metric(v, allow=("loss",))
        return v


class PostprocessingSection(Section):
    """The instance post-processor used for validation and written into exported packages."""

    name: str = Field(
        default="watershed_bcd", description="Registered post-processor (runner postprocess --list)."
    )
    params: dict = Field(default_factory=dict, description="Its parameters; missing keys take its defaults.")


# ---------------------------------------------------------------------------------------------------- export


class Author(Section):
    """A person credited in the exported package."""

    name: str = Field(description="Full name.")
    affiliation: str | None = Field(default=None, description="Institute or company.")
    email: str | None = Field(default=None, description="Contact e-mail.")
    github_user: str | None = Field(
        default=None,
        description="GitHub user name (bioimage.io checks it online when "
        "testing; leave empty to work offline).",
    )
    orcid: str | None = Field(default=None, description="ORCID iD, e.g. 0000-0002-1825-0097.")


class Citation(Section):
    """A reference to cite when using the model."""

    text: str = Field(description="Free-text citation.")
    doi: str | None = Field(default=None, description="DOI without the https://doi.org/ prefix.")
    url: str | None = Field(default=None, description="URL, when there is no DOI.")


class ExportSection(Section):
    """Metadata written into the bioimage.io package by ``runner export``."""

    description: str = Field(default="", description="One-paragraph description of the model.")
    authors: list[Author] = Field(default_factory=list, description="Authors of the model.")
    license: str = Field(default="MIT", description="SPDX license identifier of the weights.")
    tags: list[str] = Field(
        default_factory=list, description="Search tags (e.g. nuclei, fluorescence, 2d, unet)."
    )
    citations: list[Citation] = Field(default_factory=list, description="References to cite.")
    training_data: str | None = Field(
        default=None, description="What the model was trained on (free text or URL)."
    )
    validation_notes: str | None = Field(
        default=None,
        description="Markdown added to the README's Validation section, e.g. published results on the same "
        "kind of data for context.",
    )

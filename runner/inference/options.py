"""How a package is run: the one set of inference settings shared by the CLI, the batch job and the API.

:class:`InferenceOptions` is declared once here. ``runner predict`` fills a
:class:`runner.inference.batch.PredictOptions` (these settings plus file and post-processing ones) and passes
it on; :class:`runner.inference.Predictor` and :func:`runner.inference.predict_array` take the same object
(``options=``) or the same fields as keyword arguments, validated by this model:

>>> from runner.inference import InferenceOptions, Predictor
>>> opts = InferenceOptions(device="cpu", tile=512, border="pad")
>>> Predictor("model.zip", options=opts)                    # doctest: +SKIP
>>> Predictor("model.zip", device="cpu", tile=512)          # the same, field by field  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

Border = Literal["image", "pad"]
BORDER_HELP = {
    "image": "the network sees the image itself, padded only as far as its size rule needs (centred, with "
    "the rdf's pad mode); border pixels come out as in the package's test outputs and `bioimageio test`",
    "pad": "the image is first extended by the halo on every side (the rdf's pad mode, symmetric by "
    "default) and the halo cropped afterwards, as bioimageio.core's `predict` does for a whole sample",
}


class InferenceOptions(BaseModel):
    """Settings of one prediction run (see the module docstring); every field documents itself."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    device: str = Field(default="auto", description="auto, cpu, cuda or cuda:N.")
    weights: str | None = Field(
        default=None,
        description="Weight format to use: onnx, torchscript or pytorch_state_dict "
        "(default: the fastest available for the device).",
    )
    trust_code: bool = Field(
        default=False,
        description="Allow running the package's own Python code (needed for pytorch_state_dict weights).",
    )
    tile: list[int] | Literal["whole"] | None = Field(
        default=None,
        description="Largest tile per spatial axis ((z,)y,x; one value for all) or 'whole' for one pass "
        "without any padding; default: one pass when the image fits the memory budget, else tiles.",
    )
    batch_size: int | None = Field(
        default=None,
        ge=1,
        description="Tiles per forward pass (default: from the memory budget, at most 16).",
    )
    memory_mb: float | None = Field(
        default=None,
        gt=0,
        description="Activation memory budget in MiB that decides one pass or tiles and the tile size "
        "(default: half the available memory on CPU, 2048-16384; half the free GPU memory).",
    )
    halo: list[int] | None = Field(
        default=None,
        description="Context pixels per tile side ((z,)y,x; one value for all), instead of the package's "
        "halo or the network's measured receptive field.",
    )
    border: Border = Field(
        default="image",
        description="What the network sees at the image border: 'image' (default; reproduces the package's "
        "test outputs) or 'pad' (extend by the halo first, like bioimageio.core's predict).",
    )
    threads: int | None = Field(default=None, ge=1, description="CPU threads for the network.")
    tta: bool | None = Field(
        default=None,
        description="Test-time augmentation: average outputs over mirrored inputs (4x in 2D, 8x in 3D). "
        "Default: on when the package was tuned with it (config.runner.test_time_augmentation).",
    )

    @field_validator("device", mode="before")
    @classmethod
    def _device_text(cls, value: Any) -> Any:
        return value if value is None or isinstance(value, str) else str(value)

    @field_validator("tile", mode="after")
    @classmethod
    def _tile_positive(cls, value: Any) -> Any:
        if isinstance(value, list) and (not value or any(v < 1 for v in value)):
            raise ValueError(f"--tile sizes must be whole numbers >= 1 (or 'whole'), got {value}")
        return value

    @field_validator("halo", mode="after")
    @classmethod
    def _halo_not_negative(cls, value: Any) -> Any:
        if isinstance(value, list) and any(v < 0 for v in value):
            raise ValueError(f"--halo must be 0 or more pixels per side, got {value}")
        return value

    @field_validator("tile", "halo", mode="before")
    @classmethod
    def _one_or_per_axis(cls, value: Any) -> Any:
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, int) or hasattr(value, "__index__"):
            return [int(value)]
        return [int(v) for v in value]


def help_of(model: type[BaseModel], name: str) -> str:
    """The field's description: the CLI's help text comes from the one declaration."""
    return str(model.model_fields[name].description or "")


def with_overrides(options: InferenceOptions | None, overrides: dict[str, Any]) -> InferenceOptions:
    """``options`` (default: all defaults) with keyword ``overrides`` applied and validated.

    Raises
    ------
    TypeError
        An override that is not a field (a programming error, like an unknown keyword argument).
    runner.errors.UserError
        A value the field refuses.
    """
    from runner.errors import UserError

    base = options if options is not None else InferenceOptions()
    fields = type(base).model_fields
    unknown = [k for k in overrides if k not in fields]
    if unknown:
        raise TypeError(f"unknown inference option(s): {', '.join(unknown)}; known: {', '.join(fields)}")
    if not overrides:
        return base
    try:
        return type(base).model_validate({**base.model_dump(), **overrides})
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err.get("loc", ()))
        raise UserError(f"invalid option {where}: {err.get('msg')}") from None

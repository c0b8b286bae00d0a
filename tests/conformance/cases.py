"""The conformance cases: each one a small package exercising some rdf features a runner must honour.

Axis names in op arguments are format-0.5 axis ids (``batch``, ``channel``, ``z``, ``y``, ``x``); the builder
turns them into format-0.4 axis letters for 0.4 packages (``per_dataset`` there is the ``mode`` argument,
in 0.5 it is ``batch`` among the reduced axes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

WEIGHT_FORMATS = ("onnx", "torchscript", "pytorch_state_dict")


@dataclass(frozen=True)
class Op:
    """One pre- or post-processing step: the spec's op id and its arguments."""

    name: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    def __hash__(self) -> int:
        return hash((self.name, repr(sorted(self.kwargs.items()))))


def op(name: str, **kwargs: Any) -> Op:
    return Op(name, kwargs)


@dataclass(frozen=True)
class Case:
    """A package to generate and the features it covers (rows of the table in docs/COMPATIBILITY.md)."""

    id: str
    features: tuple[str, ...]
    fmt: Literal["0.5", "0.4"] = "0.5"
    ndim: int = 2
    kind: str = "local"
    """Network body: ``local`` (pooled branch), ``down``/``up`` (x2 output re-sampling), ``valid`` (unpadded
    convolutions: the output is 4 pixels smaller per axis)."""
    norm: str = "none"
    """``none``, ``instance`` or ``group`` normalisation after the first convolution."""
    in_channels: tuple[int, ...] = (1,)
    """Channels per input (two entries: two inputs)."""
    out_channels: tuple[int, ...] = (2,)
    """Channels per output (two entries: two outputs)."""
    size: Literal["parameterized", "fixed"] = "parameterized"
    min_size: int = 16
    step: int = 8
    test_size: int = 32
    """Spatial size of the test input (per axis)."""
    halo: int = 0
    """Output halo (output pixels) on every space axis."""
    fixed_output: bool = False
    """Format 0.4: the output shape as a fixed list (not by reference to the input)."""
    channel_last: bool = False
    batch: int = 1
    input_dtype: str = "float32"
    pre: tuple[tuple[Op, ...], ...] = ((),)
    """Pre-processing per input."""
    post: tuple[tuple[Op, ...], ...] = ((),)
    """Post-processing per output."""
    tolerance: tuple[float, float, float] | None = None
    """(rtol, atol, mismatched elements per million) written to the rdf; None: the spec's default."""
    default: tuple[str, ...] = ()
    """Weight formats run by the default (not slow) suite."""
    running_stats: bool = False
    """Samples are predicted one after the other with running per-dataset statistics (test output, core)."""
    core_cannot: str | None = None
    """Why bioimageio.core cannot predict this package (None: it can)."""

    @property
    def n_inputs(self) -> int:
        return len(self.in_channels)

    @property
    def n_outputs(self) -> int:
        return len(self.out_channels)

    @property
    def output_scale(self) -> float:
        """Output pixel size relative to the input's (2: half resolution)."""
        return {"down": 2.0, "up": 0.5}.get(self.kind, 1.0)

    @property
    def output_offset(self) -> int:
        """Output size minus scaled input size, per space axis."""
        return -4 if self.kind == "valid" else 0


CORE_OUTPUT_STATS = (
    "bioimageio.core 0.11 computes every statistic once, before pre-processing, when the outputs do not "
    "exist yet: statistics of an output (and scale_mean_variance) fail with KeyError 'out0'"
)
SPACE2 = ("y", "x")
SPACE3 = ("z", "y", "x")

CASES: tuple[Case, ...] = (
    Case(
        "scale_range_per_sample",
        ("scale_range per sample, per channel (axes y,x), percentiles", "sigmoid", "2 input channels"),
        in_channels=(2,),
        pre=((op("scale_range", axes=SPACE2, min_percentile=1.0, max_percentile=99.5),),),
        post=((op("sigmoid"),),),
        default=("onnx", "pytorch_state_dict"),
    ),
    Case(
        "scale_range_per_dataset",
        ("scale_range per dataset (axes batch,channel,y,x)", "clip (min, max)", "fixed size"),
        in_channels=(2,),
        size="fixed",
        test_size=24,
        pre=((op("scale_range", axes=("batch", "channel", *SPACE2), max_percentile=99.0),),),
        post=((op("clip", min=-0.5, max=0.5),),),
        default=("onnx",),
    ),
    Case(
        "zero_mean_unit_variance",
        ("zero_mean_unit_variance (axes channel,y,x)", "softmax (axis channel)", "3 output channels"),
        in_channels=(2,),
        out_channels=(3,),
        pre=((op("zero_mean_unit_variance", axes=("channel", *SPACE2)),),),
        post=((op("softmax", axis="channel"),),),
        default=("torchscript",),
    ),
    Case(
        "fixed_zero_mean_unit_variance",
        ("fixed_zero_mean_unit_variance along channel", "binarize per channel (threshold list, axis)"),
        in_channels=(2,),
        pre=((op("fixed_zero_mean_unit_variance", mean=[10.0, 9.0], std=[3.0, 2.5], axis="channel"),),),
        post=((op("binarize", threshold=[0.0, 0.1], axis="channel"),),),
        core_cannot="bioimageio.core 0.11's binarize ignores `axis` and compares with the threshold list "
        "along the last axis (ValueError: operands could not be broadcast together with shapes "
        "(1,2,32,32) (2,))",
        default=("onnx",),
    ),
    Case(
        "scale_linear_chain",
        (
            "scale_linear along channel (gain, offset lists)",
            "zero_mean_unit_variance (axes y,x) after another op",
            "binarize (one threshold)",
        ),
        in_channels=(2,),
        pre=(
            (
                op("scale_linear", gain=[2.0, 0.5], offset=[1.0, -3.0], axis="channel"),
                op("zero_mean_unit_variance", axes=SPACE2),
            ),
        ),
        post=((op("binarize", threshold=0.0),),),
        default=("onnx",),
    ),
    Case(
        "ensure_dtype_uint8",
        ("ensure_dtype (uint8 in, float32 / uint8 out)", "scale_linear (scalar)", "uint8 input data"),
        input_dtype="uint8",
        pre=((op("ensure_dtype", dtype="float32"), op("scale_linear", gain=1 / 255, offset=0.0)),),
        post=(
            (
                op("scale_linear", gain=40.0, offset=100.0),
                op("clip", min=0.0, max=255.0),
                op("ensure_dtype", dtype="uint8"),
            ),
        ),
        default=("onnx",),
    ),
    Case(
        "output_statistics",
        (
            "scale_range on an output, reference_tensor = input",
            "scale_mean_variance (reference_tensor = input)",
            "clip with percentiles",
        ),
        pre=((op("zero_mean_unit_variance", axes=SPACE2),),),
        post=(
            (
                op("scale_mean_variance", reference_tensor="raw", axes=("channel", *SPACE2)),
                op("scale_range", axes=("channel", *SPACE2), max_percentile=99.0, reference_tensor="raw"),
                op("clip", min_percentile=1.0, max_percentile=99.0, axes=SPACE2),
            ),
        ),
        core_cannot=CORE_OUTPUT_STATS,
        default=("onnx",),
    ),
    Case(
        "output_per_sample_stats",
        ("zero_mean_unit_variance on an output", "scale_range on an output (its own statistics)"),
        pre=((op("scale_range", axes=SPACE2),),),
        post=((op("zero_mean_unit_variance", axes=SPACE2), op("scale_range", axes=SPACE2)),),
        core_cannot=CORE_OUTPUT_STATS,
    ),
    Case(
        "fixed_size_halo",
        ("fixed size", "halo", "output sized by reference"),
        size="fixed",
        test_size=32,
        halo=4,
        pre=((op("zero_mean_unit_variance", axes=SPACE2),),),
        post=((op("sigmoid"),),),
        default=("onnx",),
    ),
    Case(
        "parameterized_halo",
        ("min + step size", "halo", "output sized by reference"),
        min_size=24,
        step=8,
        test_size=40,
        halo=4,
        pre=((op("zero_mean_unit_variance", axes=SPACE2),),),
        post=((op("sigmoid"),),),
    ),
    Case(
        "downsampled_output",
        ("output scale 2 (down-sampling)",),
        kind="down",
        pre=((op("zero_mean_unit_variance", axes=SPACE2),),),
        default=("onnx",),
    ),
    Case(
        "upsampled_output",
        ("output scale 0.5 (up-sampling)",),
        kind="up",
        pre=((op("zero_mean_unit_variance", axes=SPACE2),),),
    ),
    Case(
        "output_offset",
        ("output size offset (valid convolutions, -4)",),
        kind="valid",
        pre=((op("zero_mean_unit_variance", axes=SPACE2),),),
        default=("onnx",),
    ),
    Case(
        "instance_norm",
        ("instance normalisation (no halo, image larger than the minimum)",),
        norm="instance",
        test_size=48,
        pre=((op("zero_mean_unit_variance", axes=SPACE2),),),
        post=((op("sigmoid"),),),
        default=("onnx",),
    ),
    Case(
        "group_norm_3d",
        ("group normalisation", "3D", "zero_mean_unit_variance (axes z,y,x)"),
        ndim=3,
        norm="group",
        min_size=8,
        step=8,
        test_size=16,
        pre=((op("zero_mean_unit_variance", axes=SPACE3),),),
        post=((op("sigmoid"),),),
        default=("torchscript",),
    ),
    Case(
        "three_d_halo",
        ("3D", "halo", "scale_range per sample (axes z,y,x)"),
        ndim=3,
        min_size=16,
        step=8,
        test_size=24,
        halo=2,
        pre=((op("scale_range", axes=SPACE3, min_percentile=2.0, max_percentile=98.0),),),
    ),
    Case(
        "two_inputs_two_outputs",
        (
            "several inputs (second sized by reference)",
            "several outputs",
            "per-output post-processing",
        ),
        in_channels=(1, 2),
        out_channels=(2, 1),
        pre=(
            (op("zero_mean_unit_variance", axes=SPACE2),),
            (op("scale_range", axes=SPACE2, max_percentile=99.0),),
        ),
        post=((op("softmax", axis="channel"),), (op("sigmoid"),)),
        default=("onnx",),
    ),
    Case(
        "channel_last",
        ("channel-last data (axes b,y,x,c)", "3 input channels"),
        in_channels=(3,),
        channel_last=True,
        pre=((op("zero_mean_unit_variance", axes=SPACE2),),),
        post=((op("sigmoid"),),),
        default=("onnx",),
    ),
    Case(
        "batch_two",
        ("batch > 1 (test tensor of 2 samples)",),
        batch=2,
        pre=((op("zero_mean_unit_variance", axes=SPACE2),),),
        post=((op("sigmoid"),),),
        default=("onnx",),
    ),
    Case(
        "per_dataset_two_images",
        ("zero_mean_unit_variance per dataset over several images (running statistics)",),
        batch=2,
        running_stats=True,
        pre=((op("zero_mean_unit_variance", axes=("batch", "channel", *SPACE2)),),),
        post=((op("sigmoid"),),),
    ),
    Case(
        "tolerance_declared",
        ("reproducibility_tolerance in the rdf",),
        pre=((op("zero_mean_unit_variance", axes=SPACE2),),),
        tolerance=(1e-4, 1e-4, 0.0),
    ),
    # ------------------------------------------------------------------------------------------ format 0.4
    Case(
        "v04_parameterized_halo",
        ("format 0.4", "0.4 min + step shape", "0.4 implicit output shape", "halo"),
        fmt="0.4",
        min_size=24,
        test_size=40,
        halo=4,
        pre=((op("zero_mean_unit_variance", axes=SPACE2),),),
        post=((op("sigmoid"),),),
        default=("onnx",),
    ),
    Case(
        "v04_fixed_halo",
        ("format 0.4", "0.4 fixed shape with output halo"),
        fmt="0.4",
        size="fixed",
        test_size=32,
        halo=4,
        pre=((op("zero_mean_unit_variance", axes=SPACE2),),),
        post=((op("sigmoid"),),),
        default=("onnx",),
    ),
    Case(
        "v04_fixed_output_halo",
        (
            "format 0.4",
            "0.4 fixed output shape with halo (converter refuses it)",
            "0.4 zero_mean_unit_variance per_sample (axes c,y,x)",
        ),
        fmt="0.4",
        size="fixed",
        test_size=32,
        halo=4,
        fixed_output=True,
        in_channels=(2,),
        pre=((op("zero_mean_unit_variance", axes=("channel", *SPACE2)),),),
        post=((op("sigmoid"),),),
        default=("onnx",),
    ),
    Case(
        "v04_ops",
        (
            "format 0.4",
            "0.4 scale_range per_dataset",
            "0.4 scale_linear along channel",
            "0.4 scale_linear (scalar, axes y,x)",
            "0.4 clip",
            "0.4 binarize",
        ),
        fmt="0.4",
        in_channels=(2,),
        pre=(
            (
                op("scale_range", mode="per_dataset", axes=SPACE2, max_percentile=99.0),
                op("scale_linear", gain=[2.0, 1.0], offset=[0.0, 0.5], axis="channel"),
                op("scale_linear", gain=0.5, offset=0.1, axes=SPACE2),
            ),
        ),
        post=((op("clip", min=-1.0, max=1.0), op("binarize", threshold=0.0)),),
        core_cannot="bioimageio.core 0.11 raises NotImplementedError for a 0.4 scale_linear with axes "
        "(per-channel gain/offset)",
    ),
    Case(
        "v04_fixed_zmuv_scale_mean_variance",
        ("format 0.4", "0.4 zero_mean_unit_variance fixed", "0.4 scale_mean_variance"),
        fmt="0.4",
        pre=((op("fixed_zero_mean_unit_variance", mean=10.0, std=3.0),),),
        post=((op("scale_mean_variance", reference_tensor="raw", axes=("channel", *SPACE2)),),),
        core_cannot=CORE_OUTPUT_STATS,
    ),
    Case(
        "v04_downsampled_output",
        ("format 0.4", "0.4 implicit output shape scale 0.5 (down-sampling)"),
        fmt="0.4",
        kind="down",
        pre=((op("zero_mean_unit_variance", axes=SPACE2),),),
    ),
    Case(
        "v04_output_offset",
        ("format 0.4", "0.4 implicit output shape offset (valid convolutions)"),
        fmt="0.4",
        kind="valid",
        pre=((op("zero_mean_unit_variance", axes=SPACE2),),),
    ),
)

CASES_BY_ID = {c.id: c for c in CASES}

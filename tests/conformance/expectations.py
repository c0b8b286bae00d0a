"""Known runner failures of conformance cases, each with the reason (kept in one place so the tests mark them
``xfail(strict=True)`` and the table script reports them; remove an entry as soon as the case passes)."""

from __future__ import annotations

from pathlib import Path

ZOO_PACKAGE = Path(__file__).resolve().parents[2] / "zoo_packages" / "third_party" / "unet2d_nuclei_broad"
"""The vendored third-party package (the same files as ../shared/zoo/unet2d_nuclei_broad)."""

MARGIN = (
    "issue 12 item 1: runner pads a measured/declared margin around an image that is already a valid input "
    "instead of running it as one pass, so border pixels differ from bioimageio.core and the test output"
)
FIXED_HALO = (
    "issue 12 item 1: a fixed-size model with an output halo refuses an image of exactly its size "
    "('a tile of 32 pixels leaves no room for a margin of 4 pixels')"
)
OFFSET = (
    "issue 12 item 3: the output size offset (valid convolutions) is ignored on the tiled path: 32x32 "
    "written, 28x28 expected"
)

KNOWN_FAILURES: dict[str, str] = {
    "scale_range_per_sample": MARGIN,
    "scale_range_per_dataset": MARGIN,
    "zero_mean_unit_variance": MARGIN,
    "fixed_zero_mean_unit_variance": MARGIN,
    "scale_linear_chain": MARGIN,
    "ensure_dtype_uint8": MARGIN,
    "output_statistics": MARGIN,
    "output_per_sample_stats": MARGIN,
    "fixed_size_halo": FIXED_HALO,
    "parameterized_halo": MARGIN,
    "downsampled_output": MARGIN,
    "upsampled_output": MARGIN,
    "output_offset": OFFSET,
    "instance_norm": MARGIN,
    "group_norm_3d": MARGIN,
    "three_d_halo": MARGIN,
    "two_inputs_two_outputs": MARGIN,
    "channel_last": MARGIN,
    "batch_two": MARGIN,
    "tolerance_declared": MARGIN,
    "v04_parameterized_halo": MARGIN,
    "v04_fixed_halo": FIXED_HALO,
    "v04_ops": MARGIN,
    "v04_fixed_zmuv_scale_mean_variance": MARGIN,
    "v04_downsampled_output": MARGIN,
    "v04_output_offset": OFFSET,
}
"""Case id -> why ``runner predict`` does not yet reproduce it (all weight formats, all devices)."""

ZOO_FAILURE: str | None = (
    "issue 12 item 1: unet2d_nuclei_broad (fixed 512x512, halo 32) on its 512x512 test input is tiled with "
    "mirrored borders instead of one pass: max |diff| 0.37 from its test output"
)
"""Why the vendored third-party package does not yet reproduce its test output (None: it does)."""

"""PatchPerPix targets (code PPP): channel layout, patch semantics, overlapping stacks, loss mask, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
from typer.testing import CliRunner

from runner.cli import app
from runner.errors import UserError
from runner.synthetic import random_blobs, random_worms
from runner.targets import TargetOptions, channel_specs, make_targets
from runner.targets.ppp import patch_loss_mask, patch_offsets, ppp_targets


def _reference_patch(labels: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """Per pixel: is ``x + offset`` inside the image and in the same (non-zero) object? (plain loops)"""
    out = np.zeros(labels.shape, bool)
    for x in np.ndindex(labels.shape):
        y = tuple(int(a + o) for a, o in zip(x, offset, strict=True))
        if labels[x] and all(0 <= c < n for c, n in zip(y, labels.shape, strict=True)):
            out[x] = labels[y] == labels[x]
    return out


def test_offsets_raster_order_and_centre():
    off = patch_offsets((3, 5))
    assert off.shape == (15, 2)
    assert off[0].tolist() == [-1, -2] and off[-1].tolist() == [1, 2] and off[1].tolist() == [-1, -1]
    assert off[15 // 2].tolist() == [0, 0]


@pytest.mark.parametrize("shape,patch", [((40, 36), (5, 7)), ((12, 20, 18), (3, 5, 5))])
def test_patch_channels_match_definition(shape, patch):
    labels = random_blobs(shape, 6, radius=(3.0, 6.0), seed=4)
    t = make_targets(labels, "PPP", TargetOptions(patch=patch))
    k = int(np.prod(patch))
    assert t.shape == (k + 2, *shape) and t.dtype == np.float32
    np.testing.assert_array_equal(t[0], labels > 0)
    np.testing.assert_array_equal(t[1 + k // 2], labels > 0)  # offset 0 repeats the foreground
    assert not t[-1].any()  # a label image has no overlap
    offsets = patch_offsets(patch)
    for j in (0, 3, k - 1, k // 2 + 1):
        np.testing.assert_array_equal(t[1 + j], _reference_patch(labels, offsets[j]), err_msg=f"offset {j}")


def test_patches_are_symmetric():
    labels = random_blobs((48, 48), 8, radius=(4.0, 8.0), seed=2)
    patch = (7, 7)
    t = ppp_targets(labels, patch)
    offsets = patch_offsets(patch)
    k = len(offsets)
    for j in (5, 17, 30):  # p(x, o) == p(x + o, -o)
        dy, dx = offsets[j]
        fwd = t[1 + j][max(0, -dy) : 48 - max(0, dy), max(0, -dx) : 48 - max(0, dx)]
        back = t[1 + (k - 1 - j)][max(0, dy) : 48 + min(0, dy), max(0, dx) : 48 + min(0, dx)]
        np.testing.assert_array_equal(fwd, back)


def test_overlapping_stack_overlap_class_and_mask():
    worms = random_worms((64, 64), 6, seed=1)
    count = (worms > 0).sum(0)
    assert (count >= 2).any(), "the fixture must contain crossings"
    t = ppp_targets(worms, (9, 9), overlapping=True)
    np.testing.assert_array_equal(t[0], count >= 1)
    np.testing.assert_array_equal(t[-1], count >= 2)
    assert not t[1:-1, count >= 2].any(), "patches of overlap pixels are undefined (0, masked)"
    # a single pixel's patch is the membership of its own worm, overlap pixels included
    offsets = patch_offsets((9, 9))
    j = 40 + 2  # offset (0, +2)
    ys, xs = np.nonzero(count == 1)
    for y, x in list(zip(ys, xs, strict=True))[::37]:
        own = int(np.flatnonzero(worms[:, y, x])[0])
        yy, xx = y + offsets[j][0], x + offsets[j][1]
        inside = 0 <= yy < 64 and 0 <= xx < 64
        assert t[1 + j, y, x] == (inside and worms[own, yy, xx] > 0)
    mask = patch_loss_mask(t)
    np.testing.assert_array_equal(mask, count == 1)
    batched = patch_loss_mask(np.stack([t, t]), batched=True)
    assert batched.shape == (2, 1, 64, 64) and batched.sum() == 2 * mask.sum()


def test_loss_mask_with_torch():
    torch = pytest.importorskip("torch")
    labels = random_blobs((32, 32), 4, seed=0)
    t = torch.from_numpy(ppp_targets(labels, (3, 3)))[None]
    mask = patch_loss_mask(t, batched=True)
    assert mask.dtype == torch.bool and int(mask.sum()) == int((labels > 0).sum())


def test_channel_specs():
    specs = channel_specs("PPP", TargetOptions(patch=(3, 3)))
    assert [s.name for s in specs][:3] == ["fg", "patch[-1,-1]", "patch[-1,+0]"]
    assert specs[-1].name == "overlap" and len(specs) == 11
    assert {s.activation for s in specs} == {"sigmoid"}
    assert sum(s.kind == "patch" for s in specs) == 9


@pytest.mark.parametrize(
    "patch,labels,match",
    [
        (None, np.zeros((8, 8), np.uint16), "needs a patch shape"),
        ((4, 4), np.zeros((8, 8), np.uint16), "odd"),
        ((3, 3, 3), np.zeros((8, 8), np.uint16), "3D but the data is 2D"),
        ((3, 3), np.zeros((8, 8), np.float32), "integer labels"),
        ((3, 3), np.zeros((8,), np.uint16), "label image"),
    ],
)
def test_bad_input(patch, labels, match):
    with pytest.raises(UserError, match=match):
        make_targets(labels, "PPP", TargetOptions(patch=patch))


def test_cli_writes_ppp_targets(dataset2d, tmp_path):
    out = tmp_path / "targets"
    result = CliRunner().invoke(
        app, ["targets", str(dataset2d), "--code", "PPP", "--patch", "5,5", "--out", str(out), "--no-preview"]
    )
    assert result.exit_code == 0, result.output
    files = sorted((out / "train").glob("*.tif"))
    assert len(files) == 4
    arr = tifffile.imread(files[0])
    assert arr.shape == (27, 96, 96)
    meta = json.loads((out / "targets.json").read_text())
    assert meta["code"] == "PPP" and meta["options"]["patch"] == [5, 5]
    assert [c["name"] for c in meta["channels"]][0] == "fg" and meta["channels"][-1]["name"] == "overlap"


@pytest.mark.parametrize("patch", ["4,4", "5,5,5"])
def test_cli_bad_patch(dataset2d, tmp_path, patch):
    out = tmp_path / "targets"
    result = CliRunner().invoke(
        app, ["targets", str(dataset2d), "--code", "PPP", "--patch", patch, "--out", str(out)]
    )
    assert result.exit_code == 2
    assert "patch" in result.output and "Traceback" not in result.output
    assert not out.exists()

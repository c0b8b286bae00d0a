"""Training parts: normalisation vs bioimage.io, crops and padding, augmentation, losses, schedules."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_training import tiny  # noqa: I001

from runner.recipes import LossSection, ScaleRange, ZeroMeanUnitVariance
from runner.targets import channel_specs
from runner.training.augment import Patch, augment
from runner.training.data import Sample
from runner.training.losses import InstanceLoss
from runner.training.preprocess import bioimageio_kwargs, normalize
from runner.training.sampling import PatchSampler
from runner.training.setup import lr_factor


@pytest.mark.parametrize(
    "op",
    [
        ScaleRange(name="scale_range", min_percentile=2, max_percentile=99.5),
        ZeroMeanUnitVariance(name="zero_mean_unit_variance"),
    ],
)
def test_normalize_matches_bioimageio_core(op):
    from bioimageio.core import Sample as BSample
    from bioimageio.core import Tensor
    from bioimageio.core.proc_ops import ScaleRange as BScaleRange
    from bioimageio.core.proc_ops import ZeroMeanUnitVariance as BZeroMean
    from bioimageio.core.stat_calculators import compute_sample_measures
    from bioimageio.spec.model import v0_5

    x = np.random.default_rng(0).gamma(2.0, 30.0, (2, 33, 47)).astype(np.float32)
    kwargs = bioimageio_kwargs(op, 2)
    assert kwargs["kwargs"]["axes"] == ["y", "x"]
    axes = [v0_5.AxisId(a) for a in kwargs["kwargs"]["axes"]]
    if op.name == "scale_range":
        descr = v0_5.ScaleRangeDescr(
            kwargs=v0_5.ScaleRangeKwargs(axes=axes, min_percentile=2, max_percentile=99.5)
        )
        proc = BScaleRange.from_proc_descr(descr, "input")
    else:
        descr = v0_5.ZeroMeanUnitVarianceDescr(kwargs=v0_5.ZeroMeanUnitVarianceKwargs(axes=axes))
        proc = BZeroMean.from_proc_descr(descr, "input")
    sample = BSample(
        members={"input": Tensor.from_numpy(x[None], dims=("batch", "channel", "y", "x"))}, stat={}, id="s"
    )
    sample.stat = compute_sample_measures(proc.required_measures, sample)
    proc(sample)
    np.testing.assert_allclose(normalize(x, op), sample.members["input"].data.values[0], atol=1e-5)


def _sample(shape=(20, 30), fg_box=(slice(5, 9), slice(20, 26))) -> Sample:
    labels = np.zeros(shape, np.uint32)
    labels[fg_box] = 1
    image = labels[np.newaxis].astype(np.float32)
    targets = np.stack([labels, labels]).astype(np.float16)
    return Sample(name="s", image=image, targets=targets, labels=labels, fg_index=np.flatnonzero(labels))


def test_crops_pad_small_images_and_mask_the_padding():
    recipe = tiny(
        2, data={"patch": [32, 48], "foreground_crop": 0.0}, augmentation={"flip": False, "rotate90": False}
    )
    sampler = PatchSampler([_sample()], recipe)
    patch = sampler.crop(sampler.samples[0], np.random.default_rng(0))
    assert patch.image.shape == (1, 32, 48) and patch.targets.shape == (2, 32, 48)
    assert patch.mask.sum() == 20 * 30  # exactly the image pixels count in the loss
    np.testing.assert_array_equal(patch.image[0] * patch.mask, patch.targets[0] * patch.mask)


def test_foreground_biased_crops():
    big = _sample((200, 200), (slice(150, 160), slice(10, 20)))
    rng = np.random.default_rng(1)
    biased = PatchSampler([big], tiny(2, data={"patch": [32, 32], "foreground_crop": 1.0}))
    assert all(biased.crop(big, rng).targets[0].any() for _ in range(30))
    uniform = PatchSampler([big], tiny(2, data={"patch": [32, 32], "foreground_crop": 0.0}))
    assert sum(uniform.crop(big, rng).targets[0].any() for _ in range(30)) < 15


def test_augmentation_moves_image_and_targets_together():
    recipe = tiny(2, augmentation={"elastic": {"p": 1.0, "magnitude": 3.0, "spacing": 8}})
    rng = np.random.default_rng(3)
    base = np.random.default_rng(0).random((32, 32)).astype(np.float32)
    for _ in range(5):
        patch = Patch(
            image=base[None].copy(), targets=np.stack([base, 1 - base]), mask=np.ones((32, 32), np.float32)
        )
        out = augment(patch, recipe.augmentation, rng)
        np.testing.assert_allclose(out.image[0], out.targets[0], atol=1e-6)
        np.testing.assert_allclose(out.targets[1], 1 - out.targets[0], atol=1e-6)
        assert not np.allclose(out.image[0], base)  # something moved


def test_intensity_augmentations_touch_only_the_image():
    recipe = tiny(
        2,
        augmentation={
            "flip": False,
            "rotate90": False,
            "intensity": {"p": 1.0},
            "gamma": {"p": 1.0},
            "noise": {"p": 1.0},
            "blur": {"p": 1.0},
        },
    )
    base = np.random.default_rng(0).random((1, 16, 16)).astype(np.float32)
    targets = np.ones((3, 16, 16), np.float32)
    out = augment(
        Patch(image=base.copy(), targets=targets.copy(), mask=np.ones((16, 16), np.float32)),
        recipe.augmentation,
        np.random.default_rng(0),
    )
    assert not np.allclose(out.image, base) and np.array_equal(out.targets, targets)


def test_losses():
    specs = channel_specs("BCD")
    loss = InstanceLoss(specs, [1.0, 1.0, 2.0], LossSection(binary="bce", distance="mse"))
    t = torch.zeros(1, 3, 8, 8)
    t[:, :2, 2:5, 2:5] = 1.0
    t[:, 2] = 0.5
    good = torch.where(t[:, :2] > 0.5, 20.0, -20.0)
    logits = torch.cat([good, t[:, 2:]], 1)
    mask = torch.ones(1, 8, 8)
    perfect = loss(logits, t, mask)
    assert perfect.total.item() < 1e-6
    worse = logits.clone()
    worse[:, 2] += 1.0
    assert loss(worse, t, mask).parts["D"] == pytest.approx(1.0)
    assert loss(worse, t, mask).total.item() == pytest.approx(2.0, abs=1e-5)  # channel weight 2 on D
    half = mask.clone()
    half[:, :, 4:] = 0  # padding: errors there do not count
    wrong_right_half = logits.clone()
    wrong_right_half[:, 2, :, 4:] += 5.0
    assert loss(wrong_right_half, t, half).total.item() < 1e-6
    dice = InstanceLoss(specs, [1, 1, 1], LossSection(binary="bce_dice"))
    assert dice(logits, t, mask).total.item() < 1e-3
    cls = InstanceLoss(specs, [1, 1, 1], LossSection(), n_classes=3)
    classes = torch.zeros(1, 8, 8, dtype=torch.long)
    with_class = torch.cat([logits, torch.zeros(1, 3, 8, 8)], 1)
    assert cls(with_class, t, mask, classes=classes).parts["class"] == pytest.approx(np.log(3), abs=1e-5)


def test_lr_schedules():
    cosine = lr_factor(tiny(2, schedule={"name": "cosine", "warmup": 10, "min_lr_ratio": 0.1}), 110)
    assert cosine(0) == pytest.approx(0.1) and cosine(9) == pytest.approx(1.0)
    assert cosine(10) == pytest.approx(1.0) and cosine(110) == pytest.approx(0.1)
    assert cosine(60) == pytest.approx(0.55)
    step = lr_factor(tiny(2, schedule={"name": "step", "every": 10, "gamma": 0.5}), 100)
    assert [step(i) for i in (0, 9, 10, 25)] == [1.0, 1.0, 0.5, 0.25]


def test_resolve_device():
    from runner.errors import UserError
    from runner.training.setup import resolve_device

    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(UserError, match="--device must be"):
        resolve_device("tpu")


def test_greyscale_rgba_png_trains_as_one_channel(tmp_path):
    """DSB2018-style PNGs (grey saved as RGBA) load as the one channel the recipe asks for; colour fails."""
    import imageio.v3 as iio
    import tifffile

    from runner.errors import UserError
    from runner.io import Pair
    from runner.synthetic import random_blobs, render
    from runner.training.data import load_sample

    labels = random_blobs((64, 64), 6, radius=(5, 8), seed=1)
    grey = (render(labels, seed=1) * 255).clip(0, 255).astype(np.uint8)
    iio.imwrite(tmp_path / "a.png", np.dstack([grey, grey, grey, np.full_like(grey, 255)]))
    iio.imwrite(tmp_path / "b.png", np.dstack([grey, grey // 2, grey]))
    tifffile.imwrite(tmp_path / "a_labels.tif", labels.astype(np.uint16))
    sample = load_sample(Pair("a", tmp_path / "a.png", tmp_path / "a_labels.tif"), tiny(2))
    assert sample.image.shape == (1, 64, 64)
    with pytest.raises(UserError, match="3 channel"):
        load_sample(Pair("b", tmp_path / "b.png", tmp_path / "a_labels.tif"), tiny(2))


def test_tiled_validation_matches_the_whole_image():
    """Training validation tiles through runner.inference.tiling: away from the image border the stitched
    logits equal one pass over the whole image (batch norm in eval mode is local)."""
    import numpy as np
    import torch

    from runner.models import halo, size_rule
    from runner.recipes import recipe_from_dict
    from runner.training.inference import predict_logits

    torch.manual_seed(0)
    recipe = recipe_from_dict(
        {
            "name": "tiles",
            "dims": 2,
            "model": {"depth": 2, "features": 8},
            "data": {"patch": [48, 48]},
            "training": {"iterations": 1},
        }
    )
    model = recipe.build_model().eval()
    rule, margin = size_rule(recipe.model, 2), halo(recipe.model, 2, round_to_step=True)
    image = np.random.default_rng(0).normal(size=(1, 150, 170)).astype(np.float32)
    whole = predict_logits(model, image, rule=rule)
    tiled = predict_logits(model, image, rule=rule, tile=(56, 56), halo=margin)
    inner = (slice(None), slice(30, -30), slice(30, -30))
    assert tiled.shape == whole.shape
    np.testing.assert_allclose(tiled[inner], whole[inner], atol=1e-5)

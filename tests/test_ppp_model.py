"""PatchPerPix network and training: the ppp recipe builds a scriptable / ONNX-exportable U-Net, training
crops get their patch targets after augmentation, the patch loss is masked, and a tiny run learns."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from runner.recipes import load_recipe, merge, recipe_from_dict, recipe_to_dict
from runner.synthetic import random_blobs
from runner.targets import channel_specs, make_targets
from runner.targets.ppp import patch_channels, patch_loss, ppp_targets
from runner.training import train
from runner.training.data import crop_targets, load_datasets
from runner.training.losses import InstanceLoss
from runner.training.sampling import PatchSampler
from tests._onnx import onnx_outputs


def _small_ppp(**override):
    """The ppp2d recipe, shrunk to train in seconds on a CPU."""
    base = recipe_to_dict(load_recipe("model_specs/ppp2d.yaml"))
    small = {
        "targets": {"options": {"patch": [5, 5]}},
        "model": {"depth": 2, "features": 8, "max_features": 16},
        "data": {"patch": [48, 48]},
        "training": {"iterations": 30, "batch_size": 4, "log_every": 5, "checkpoint_every": 15, "threads": 1},
        "optimizer": {"lr": 0.01},
        "validation": {"every": 15, "metric": "accuracy@0.5"},
        "postprocessing": {"name": "patchperpix", "params": {"patch": [5, 5], "min_size": 5}},
    }
    base["schedule"] = {"name": "constant", "warmup": 0}
    return recipe_from_dict(merge(merge(base, small), override))


def test_recipe_builds_the_ppp_network():
    recipe = load_recipe("model_specs/ppp2d.yaml")
    assert recipe.targets.code == "PPP" and recipe.model.up_features == "constant"
    assert recipe.n_code_channels == 227 and crop_targets(recipe)
    net = recipe.build_model().eval()
    with torch.no_grad():
        y = net(torch.randn(1, 1, 32, 32))
    assert y.shape == (1, 227, 32, 32) and float(y.min()) >= 0 and float(y.max()) <= 1  # sigmoid head


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_ppp_network_scripts_and_exports_to_onnx():
    torch.manual_seed(0)
    net = _small_ppp().build_model().eval()
    x = torch.randn(2, 1, 24, 32)
    with torch.no_grad():
        ref = net(x)
        assert torch.allclose(torch.jit.script(net)(x), ref, atol=1e-6)
    out = onnx_outputs(net, x[:1, :, :16, :16], x)
    assert out.shape == (2, 27, 24, 32)
    np.testing.assert_allclose(out, ref.numpy(), atol=1e-4)


def test_crops_get_targets_of_their_augmented_labels(dataset2d):
    recipe = _small_ppp()
    data = load_datasets(dataset2d, recipe, progress=False)
    assert all(s.targets.shape[0] == 0 for s in data.train)  # nothing precomputed per image
    sampler = PatchSampler(data.train, recipe)
    rng = np.random.default_rng(3)
    for _ in range(6):  # flips, rotations and elastic warps: targets always match the moved labels
        patch = sampler.sample(rng)
        assert patch.targets.shape == (27, 48, 48)
        np.testing.assert_array_equal(patch.targets, ppp_targets(patch.labels, (5, 5)))
    batch = sampler.batch(rng, 3)
    assert batch.targets.shape == (3, 27, 48, 48) and batch.targets.dtype == np.float32


def test_patch_loss_masks_background_overlap_and_outside_offsets():
    labels = random_blobs((24, 24), 4, radius=(3.0, 5.0), seed=0)
    t = torch.from_numpy(ppp_targets(labels, (3, 3)))[None]
    specs = channel_specs("PPP", _small_ppp().targets.options.model_copy(update={"patch": (3, 3)}))
    idx, offsets = patch_channels(specs)
    assert idx == list(range(1, 10)) and offsets[0].tolist() == [-1, -1]
    w = torch.ones(1, 24, 24)
    perfect = (t * 2 - 1) * 30  # logits agreeing with the targets
    assert float(patch_loss(perfect, t, w, idx, offsets)) < 1e-6
    # wrong logits on background pixels, on offsets leaving the image and on overlap pixels do not count
    noisy = perfect.clone()
    noisy[:, 1:10, labels == 0] = 30.0
    noisy[:, 1, 0, :] = -30.0  # offset (-1, -1) from row 0 leaves the image
    t_overlap = t.clone()
    t_overlap[:, -1, 5, 5] = 1
    noisy[:, 1:10, 5, 5] = -30.0 * (t[:, 1:10, 5, 5] * 2 - 1)
    assert float(patch_loss(noisy, t_overlap, w, idx, offsets)) < 1e-6
    noisy[:, 3, labels > 0] = -30.0 * (t[:, 3, labels > 0] * 2 - 1)  # wrong where it counts
    assert float(patch_loss(noisy, t, w, idx, offsets)) > 0.5


def test_instance_loss_reports_fg_patch_overlap():
    recipe = _small_ppp()
    specs = channel_specs("PPP", recipe.targets.options)
    loss_fn = InstanceLoss(specs, recipe.targets.weights(), recipe.loss)
    labels = random_blobs((32, 32), 5, radius=(3.0, 6.0), seed=1)
    t = torch.from_numpy(make_targets(labels, "PPP", recipe.targets.options))[None]
    result = loss_fn(torch.zeros_like(t), t, torch.ones(1, 32, 32))
    assert set(result.parts) == {"fg", "overlap", "patch"}
    assert result.parts["patch"] == pytest.approx(np.log(2), rel=1e-5)


def test_tiny_ppp_training_learns(dataset2d, tmp_path):
    run = tmp_path / "run"
    result = train(_small_ppp(), dataset2d, run, progress=False)
    assert result.iteration == 30
    with open(run / "train_log.csv") as f:
        rows = list(csv.DictReader(f))
    assert {"loss_fg", "loss_patch", "loss_overlap"} <= set(rows[0])
    assert not any(k.startswith("loss_patch[") for k in rows[0])  # one joint patch part, not 25 columns
    losses = [float(r["loss"]) for r in rows if r["loss"]]
    assert losses[-1] < 0.8 * losses[0]
    val = [r for r in rows if r["val_metric"]]
    assert len(val) == 2 and all(0.0 <= float(r["val_accuracy"]) <= 1.0 for r in val)

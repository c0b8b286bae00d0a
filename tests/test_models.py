"""U-Net models: shapes, head activations, TorchScript, ONNX export, receptive field, halo and tiling."""

from __future__ import annotations

import ast

import numpy as np
import pytest
import torch

from runner.models import (
    UNetConfig,
    architecture_source,
    build_model,
    halo,
    model_kwargs,
    output_activations,
    receptive_field,
    size_rule,
)
from tests._onnx import onnx_outputs

ARCHS = {
    "plain": {"depth": 2, "features": 4},
    "residual": {"depth": 2, "features": 4, "residual": True, "dropout": 0.1},
    "instance": {"depth": 2, "features": 4, "norm": "instance"},
    "group": {"depth": 2, "features": 4, "norm": "group", "groups": 2},
    "none": {"depth": 2, "features": 4, "norm": "none"},
    "ppp_constant_nearest": {
        "depth": 2,
        "features": 4,
        "up_features": "constant",
        "upsampling": "nearest",
        "feature_factor": 3,
    },
}


def _net(name: str, ndim: int, acts=None):
    torch.manual_seed(0)
    acts = acts or output_activations("BCD", n_classes=3)
    return build_model(UNetConfig(**ARCHS[name]), ndim=ndim, in_channels=2, activations=acts).eval()


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("name", list(ARCHS))
def test_script_and_onnx_export(name, ndim):
    net = _net(name, ndim)
    x = torch.randn(1, 2, *([8] * ndim))
    x2 = torch.randn(2, 2, *([12] * ndim))
    with torch.no_grad():
        ref, ref2 = net(x), net(x2)
    scripted = torch.jit.script(net)
    with torch.no_grad():
        assert torch.allclose(scripted(x2), ref2, atol=1e-6)
    out = onnx_outputs(net, x, x2)
    assert out.shape == (2, 6, *([12] * ndim))
    np.testing.assert_allclose(out, ref2.numpy(), atol=1e-4)
    assert ref.shape == (1, 6, *([8] * ndim))


def test_head_activations():
    net = _net("plain", 2)
    x = torch.randn(2, 2, 16, 16) * 5
    with torch.no_grad():
        y, logits = net(x), net.logits(x)
    assert torch.all((y[:, :2] >= 0) & (y[:, :2] <= 1))  # B, C sigmoid
    assert torch.equal(y[:, 2], logits[:, 2])  # D identity
    assert torch.allclose(y[:, 3:].sum(1), torch.ones(2, 16, 16), atol=1e-5)  # class head softmax
    assert torch.allclose(y[:, :2], torch.sigmoid(logits[:, :2]))
    assert output_activations("BCDv2") == ["sigmoid", "sigmoid", "identity"]
    assert output_activations("BC", n_classes=2) == ["sigmoid", "sigmoid"]  # 2 classes: no class head


def test_up_features_constant_keeps_width():
    net = _net("ppp_constant_nearest", 2, acts=["sigmoid"] * 9)
    widths = [b.conv2.out_channels for b in net.up_blocks]
    assert widths == [net.bottom.conv2.out_channels] * 2 == [36, 36]  # 4 * 3**2 everywhere on the way up
    halve = _net("plain", 2)
    assert [b.conv2.out_channels for b in halve.up_blocks] == [8, 4]


def test_size_rule_and_pooling():
    cfg = UNetConfig(depth=3)
    rule = size_rule(cfg, 2)
    assert rule.step == (8, 8) and rule.min == (8, 8)
    assert rule.valid((64, 24)) and not rule.valid((60, 64))
    assert rule.round_up((60, 1)) == (64, 8)
    aniso = UNetConfig(depth=2, pooling=[[1, 2, 2], [2, 2, 2]])
    assert size_rule(aniso, 3).step == (2, 4, 4)
    net = build_model(aniso, ndim=3, in_channels=1, activations=["sigmoid"])
    assert net(torch.zeros(1, 1, 2, 4, 8)).shape == (1, 1, 2, 4, 8)


@pytest.mark.parametrize(
    "cfg",
    [
        UNetConfig(depth=2, features=4, norm="none"),
        UNetConfig(depth=3, features=4, norm="none", upsampling="nearest"),
    ],
)
def test_receptive_field_matches_gradient_support(cfg):
    """The computed receptive field and one-sided reach equal the support of an output pixel's gradient."""
    torch.manual_seed(1)
    net = build_model(cfg, ndim=2, in_channels=1, activations=["identity"]).eval()
    with torch.no_grad():  # positive biases keep the ReLUs open, so no path is cut off by chance
        for m in net.modules():
            if isinstance(m, torch.nn.Conv2d | torch.nn.ConvTranspose2d) and m.bias is not None:
                m.bias.uniform_(0.1, 0.3)
    rule = size_rule(cfg, 2)
    extents, reach = [], []
    for y in range(64, 64 + rule.step[0]):
        support = np.zeros(128)
        for _ in range(3):  # max pooling passes gradient to one pixel per window: take the union of draws
            x = torch.randn(1, 1, 128, 128, requires_grad=True)
            net.logits(x)[0, 0, y, y].backward()
            support += x.grad[0, 0].abs().sum(1).numpy()
        rows = np.nonzero(support)[0]
        extents.append(rows.max() - rows.min() + 1)
        reach += [y - rows.min(), rows.max() - y]
    assert max(extents) == receptive_field(cfg, 2)[0]
    assert max(reach) == halo(cfg, 2)[0]


def test_tiled_prediction_equals_whole_image():
    from runner.training.inference import predict_logits

    cfg = UNetConfig(depth=2, features=4)
    net = build_model(cfg, ndim=2, in_channels=1, activations=["sigmoid", "identity"]).eval()
    with torch.no_grad():  # non-trivial batch-norm statistics
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    rule, h = size_rule(cfg, 2), halo(cfg, 2, round_to_step=True)
    image = np.random.default_rng(0).normal(size=(1, 96, 128)).astype(np.float32)
    whole = predict_logits(net, image, rule=rule)
    tiled = predict_logits(net, image, rule=rule, tile=(96, 96), halo=h)
    assert tiled.shape == whole.shape == (2, 96, 128)
    inner = (slice(None), slice(h[0], -h[0]), slice(h[1], -h[1]))
    np.testing.assert_allclose(tiled[inner], whole[inner], atol=1e-5)
    odd = predict_logits(net, image[:, :77, :50], rule=rule)  # any size: padded to 80 x 52 and cropped
    assert odd.shape == (2, 77, 50)


def test_architecture_source_is_self_contained():
    cfg = UNetConfig(depth=2, features=4, residual=True)
    path, cls_name = architecture_source(cfg)
    tree = ast.parse(path.read_text())
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert imported <= {"torch", "typing"}
    namespace: dict = {}
    exec(compile(path.read_text(), str(path), "exec"), namespace)  # noqa: S102 - our own file
    kwargs = model_kwargs(cfg, ndim=2, in_channels=1, activations=["sigmoid", "identity"])
    rebuilt = namespace[cls_name](**kwargs).eval()
    original = build_model(cfg, ndim=2, in_channels=1, activations=["sigmoid", "identity"]).eval()
    rebuilt.load_state_dict(original.state_dict())
    x = torch.randn(1, 1, 16, 16)
    with torch.no_grad():
        assert torch.equal(rebuilt(x), original(x))


def test_bad_architecture_values():
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        UNetConfig(depth=2, pooling=[[2, 2]])  # one level for depth 2
    with pytest.raises(ValidationError):
        UNetConfig(norm="layer")
    with pytest.raises(ValueError, match="pooling entries"):
        size_rule(UNetConfig(depth=1, pooling=[[2, 2]]), 3)

"""runner.inference: tiling as pure functions, tiled == whole-image on tiny packages (2D/3D, scaled outputs,
several inputs, 0.4 format), agreement with bioimageio.core, receptive-field halo, weights and devices."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import ndimage as ndi

from runner.errors import UserError
from runner.inference import Predictor, load_package, predict_array, reproduce_test_outputs
from runner.inference.sizes import SizeRule
from runner.inference.tiling import OutputGeometry, pad_image, plan_axis, plan_tiles, run_tiled
from tests._packages import build_package, build_package_v04

# ------------------------------------------------------------------------------------------ pure tiling


RULES = [
    SizeRule("parameterized", min=32, step=8),
    SizeRule("parameterized", min=16, step=16),
    SizeRule("fixed", size=64),
    SizeRule("any"),
]


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.describe())
@pytest.mark.parametrize("size", [1, 7, 40, 64, 100, 257])
@pytest.mark.parametrize("margin", [0, 4, 8])
@pytest.mark.parametrize("max_tile", [None, 48, 80])
@pytest.mark.parametrize("border", ["pad", "image"])
def test_plan_axis_owns_every_pixel_once(rule, size, margin, max_tile, border):
    extend = margin if border == "pad" else 0
    plan = plan_axis(
        size=size, rule=rule, margin=margin, max_tile=max_tile, granularity=rule.granularity, extend=extend
    )
    assert rule.is_valid(plan.tile)
    owned = np.zeros(size, int)
    for i, start in enumerate(plan.starts()):
        assert start % rule.granularity == 0 and 0 <= start and start + plan.tile <= plan.length
        lo, hi = plan.owned(i)
        owned[lo:hi] += 1
        if hi > lo:  # context of `margin` inside the tile around the owned region, or the extent's own end
            lo, hi = lo + plan.pad_before, hi + plan.pad_before
            assert lo - start >= margin or start == 0
            assert start + plan.tile - hi >= margin or start + plan.tile == plan.length
    assert (owned == 1).all()
    assert plan.pad_before >= extend and plan.pad_after >= extend
    if plan.n == 1:  # one pass: centred like bioimageio.core's pad_to
        assert plan.pad_before - extend == (plan.tile - size - 2 * extend) // 2


def test_plan_axis_rejects_margin_that_leaves_no_room():
    with pytest.raises(UserError, match="no room for a margin"):
        plan_axis(size=1000, rule=SizeRule("fixed", size=64), margin=32)


def _box_filter(batch: np.ndarray, radius: int) -> np.ndarray:
    """A local operation with zero padding at the tile border (like a conv net): radius-r box mean."""
    size = [1, 1] + [2 * radius + 1] * (batch.ndim - 2)
    return ndi.uniform_filter(batch.astype(np.float64), size=size, mode="constant").astype(np.float32)


@pytest.mark.parametrize("shape", [(50, 77), (13, 29, 31)])
def test_run_tiled_equals_one_pass_for_a_local_operation(shape):
    rng = np.random.default_rng(0)
    image = rng.random((2, *shape)).astype(np.float32)
    rules = [SizeRule("parameterized", min=8, step=4)] * len(shape)
    margin = [3] * len(shape)

    def forward(batches):
        return [_box_filter(batches[0], 3)]

    geom = [OutputGeometry(ratio=(1,) * len(shape))]
    whole_plan = plan_tiles(shape=shape, rules=rules, margins=margin)
    tiled_plan = plan_tiles(shape=shape, rules=rules, margins=margin, max_tile=[16] * len(shape))
    assert whole_plan.n_tiles == 1 and tiled_plan.n_tiles > 4
    whole = run_tiled([pad_image(image, whole_plan)], forward=forward, plan=whole_plan, outputs=geom)[0]
    tiled = run_tiled(
        [pad_image(image, tiled_plan)], forward=forward, plan=tiled_plan, outputs=geom, batch_size=5
    )[0]
    assert whole.shape == image.shape
    np.testing.assert_allclose(tiled, whole, atol=1e-6)


def test_run_tiled_scaled_and_cropped_outputs():
    """A 'model' that upsamples x2 and crops 2 output pixels per side: stitched output covers the image x2."""
    rng = np.random.default_rng(1)
    image = rng.random((1, 37, 45)).astype(np.float32)
    rules = [SizeRule("parameterized", min=8, step=2)] * 2

    def forward(batches):
        up = batches[0].repeat(2, axis=2).repeat(2, axis=3)
        return [up[:, :, 2:-2, 2:-2]]

    geom = OutputGeometry(ratio=(2, 2), crop=(2, 2))
    margin = [geom.margin_needed(k) for k in range(2)]
    plan = plan_tiles(shape=image.shape[1:], rules=rules, margins=margin, max_tile=[12, 14])
    out = run_tiled([pad_image(image, plan)], forward=forward, plan=plan, outputs=[geom])[0]
    np.testing.assert_array_equal(out, image.repeat(2, axis=1).repeat(2, axis=2))


# ---------------------------------------------------------------------------------------- tiny packages


@pytest.fixture(scope="module")
def packages(tmp_path_factory):
    root = tmp_path_factory.mktemp("packages")
    return {
        "2d": build_package(
            root / "p2d", formats=("pytorch_state_dict", "torchscript", "onnx"), make_zip=True
        ),
        "3d": build_package(root / "p3d", ndim=3, halo=8, step=8, min_size=24),
        "nohalo": build_package(root / "nohalo", halo=0),
        "scaled": build_package(root / "scaled", in_channels=3, out_channels=1, upsample_output=2),
        "two": build_package(root / "two", n_inputs=2),
        "fixed": build_package(root / "fixed", fixed=64),
    }


def _rand(shape, seed=0):
    return np.random.default_rng(seed).normal(5.0, 2.0, shape).astype(np.float32)


@pytest.mark.parametrize("weights", ["onnx", "torchscript"])
@pytest.mark.parametrize(
    "kind,shape,tile",
    [
        ("2d", (1, 97, 141), 40),
        ("3d", (1, 29, 37, 45), 32),
        ("fixed", (1, 150, 99), None),
        ("scaled", (3, 61, 70), 32),
    ],
)
def test_tiled_equals_whole_image(packages, kind, shape, tile, weights):
    image = _rand(shape)
    with Predictor(packages[kind].folder, device="cpu", weights=weights) as p:
        whole = p.predict(image, tile=10_000)["prediction"]
        assert p.last_run.n_tiles == 1 or kind == "fixed"
        tiled = p.predict(image, tile=tile)["prediction"]
        assert p.last_run.n_tiles > 2
    ratio = 2 if kind == "scaled" else 1
    assert whole.shape[1:] == tuple(s * ratio for s in shape[1:])
    np.testing.assert_allclose(tiled, whole, atol=1e-4)


def test_fixed_size_model_whole_image_is_one_padded_pass(packages):
    """For the fixed 64x64 model compare the one pass with a direct forward on the padded image (centred,
    like bioimageio.core's pad_to; the halo is not added with the default `image` border policy)."""
    pkg = packages["fixed"]
    image = _rand((1, 40, 33))
    out = predict_array(pkg.folder, image, device="cpu")["prediction"]
    assert out.shape == (2, 40, 33)
    torch = pytest.importorskip("torch")
    x = (image - image.mean()) / (image.std() + 1e-6)
    padded = np.pad(x, [(0, 0), (12, 12), (15, 16)], mode="symmetric")
    with torch.no_grad():
        ref = torch.sigmoid(pkg.net(torch.from_numpy(padded[None].astype(np.float32)))).numpy()[0]
    np.testing.assert_allclose(out, ref[:, 12:52, 15:48], atol=1e-5)


def test_receptive_field_margin_when_rdf_has_no_halo(packages):
    with Predictor(packages["nohalo"].folder, device="cpu") as p:
        assert p.geometry.declared_margin is None
        margin = p.margin()
        # TinyNet: conv, pool, conv, upsample, conv -> influence reaches about 6 px; rounded to the step (8)
        assert all(6 <= m <= 16 for m in margin)
        image = _rand((1, 90, 101), seed=3)
        np.testing.assert_allclose(
            p.predict(image, tile=32)["prediction"], p.predict(image, tile=10_000)["prediction"], atol=1e-4
        )


def test_two_inputs_and_test_outputs(packages):
    pkg = packages["two"]
    results = reproduce_test_outputs(pkg.folder)
    assert [r.ok for r in results] == [True] and results[0].max_abs_diff < 1e-4
    a, b = _rand((1, 70, 90), 1), _rand((1, 70, 90), 2)
    with Predictor(pkg.folder, device="cpu") as p:
        tiled = p.predict({"raw": a, "aux": b}, tile=32)["prediction"]
        whole = p.predict({"raw": a, "aux": b}, tile=10_000)["prediction"]
        np.testing.assert_allclose(tiled, whole, atol=1e-4)
        with pytest.raises(UserError, match="takes inputs raw, aux"):
            p.predict({"raw": a})
        with pytest.raises(UserError, match="same spatial shape"):
            p.predict({"raw": a, "aux": b[:, :60]})


def test_all_weight_formats_agree_and_zip_loads(packages):
    pkg = packages["2d"]
    image = _rand((1, 64, 80), 4)
    outs = {}
    for fmt in ("onnx", "torchscript", "pytorch_state_dict"):
        outs[fmt] = predict_array(pkg.zip, image, device="cpu", weights=fmt, trust_code=True, tile=32)[
            "prediction"
        ]
    np.testing.assert_allclose(outs["torchscript"], outs["onnx"], atol=1e-5)
    np.testing.assert_allclose(outs["pytorch_state_dict"], outs["onnx"], atol=1e-5)
    loaded = load_package(pkg.zip)
    root = loaded.root
    assert root.exists() and loaded.weight_formats == ("onnx", "torchscript", "pytorch_state_dict")
    loaded.close()
    assert not root.exists()


def test_default_weights_skip_code_formats_and_trust_is_required(tmp_path, packages):
    with Predictor(packages["2d"].folder, device="cpu") as p:
        assert p.weight_format == "onnx"
    only_sd = build_package(tmp_path / "sd", formats=("pytorch_state_dict",))
    with pytest.raises(UserError, match="trust-code"):
        Predictor(only_sd.folder, device="cpu")
    with Predictor(only_sd.folder, device="cpu", trust_code=True) as p:
        assert p.weight_format == "pytorch_state_dict"
    with pytest.raises(UserError, match="no 'keras_hdf5' weights"):
        Predictor(packages["2d"].folder, device="cpu", weights="keras_hdf5")


def test_version_04_package(tmp_path):
    pkg = build_package_v04(tmp_path / "v04")
    loaded = load_package(pkg.folder)
    assert loaded.original_format_version.startswith("0.4")
    assert loaded.halo == {"prediction": {"y": 8, "x": 8}}
    assert reproduce_test_outputs(loaded)[0].ok
    image = _rand((1, 75, 66), 5)
    with Predictor(loaded, device="cpu") as p:
        np.testing.assert_allclose(
            p.predict(image, tile=32)["prediction"], p.predict(image, tile=999)["prediction"], atol=1e-4
        )


def test_agrees_with_bioimageio_core(packages):
    """Same package, same image: bioimageio.core's tiled prediction (ONNX) and ours."""
    from bioimageio.core import Tensor, create_prediction_pipeline, predict
    from bioimageio.spec import load_description
    from loguru import logger

    logger.disable("bioimageio")
    descr = load_description(packages["2d"].folder, perform_io_checks=False)
    image = _rand((1, 1, 112, 136), 6)
    pipeline = create_prediction_pipeline(descr, weights_format="onnx")
    ref = (
        predict(
            model=pipeline,
            inputs={"raw": Tensor.from_numpy(image, dims=("batch", "channel", "y", "x"))},
            blocksize_parameter=6,
        )
        .members["prediction"]
        .data.values[0]
    )
    # core's tiles extend the image by the halo first: the `pad` border policy
    ours = predict_array(
        packages["2d"].folder, image[0], device="cpu", weights="onnx", tile=48, border="pad"
    )["prediction"]
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, atol=1e-4)


def test_bad_images_for_the_model(packages):
    with Predictor(packages["2d"].folder, device="cpu") as p:
        with pytest.raises(UserError, match=r"takes 2D images \(axes bcyx"):
            p.predict(_rand((1, 8, 40, 40)))
        with pytest.raises(UserError, match="3 channels, more than the 1"):
            p.predict(_rand((3, 40, 40)))
        bad = _rand((1, 40, 40))
        bad[0, 3, 3] = np.nan
        with pytest.raises(UserError, match="NaN"):
            p.predict(bad)
        with pytest.raises(UserError, match="valid input shape"):
            p.predict(_rand((1, 41, 40)), tile="whole")


def test_device_parsing():
    from runner.inference.devices import resolve_device, torch_cuda_count

    assert str(resolve_device("cpu")) == "cpu"
    with pytest.raises(UserError, match="unknown device"):
        resolve_device("tpu")
    if torch_cuda_count() == 0:
        with pytest.raises(UserError, match="no CUDA device"):
            resolve_device("cuda:0")
        assert str(resolve_device("auto")) == "cpu"


def test_tile_batch_bounds_memory(packages):
    """The batch of tiles shrinks with the memory budget; tiles never exceed it."""
    with Predictor(packages["2d"].folder, device="cpu", memory_mb=1) as p:
        plan, batch = p.plan((600, 700))
        voxels = 2**20 // 1024
        assert math.prod(plan.tile_shape) * batch <= max(voxels, math.prod(plan.tile_shape))
        assert plan.n_tiles > 1
    with Predictor(packages["2d"].folder, device="cpu") as p:
        plan, _ = p.plan((600, 700))
        assert plan.n_tiles == 1


def test_granularity_keeps_pooling_phase(packages):
    """Tile starts are multiples of the size step, so max-pooling sees the whole-image phase."""
    with Predictor(packages["2d"].folder, device="cpu") as p:
        plan, _ = p.plan((203, 317), tile=(48, 56))
        for a in plan.axes:
            assert all(s % 8 == 0 for s in a.starts())
        assert len(list(itertools.islice(plan.tile_indices(), 3))) == 3


def test_gpu_tile_path_with_torch_tensors(packages, monkeypatch):
    """The GPU path (inputs moved once as torch tensors, tiles stacked with torch) gives the numpy path's
    result; exercised here with CPU tensors by pretending the device is CUDA."""
    from runner.inference.devices import Device

    image = _rand((1, 70, 83), 7)
    with Predictor(packages["2d"].folder, device="cpu", weights="torchscript", memory_mb=64) as p:
        expected = p.predict(image, tile=32)["prediction"]
        monkeypatch.setattr(Device, "is_cuda", property(lambda self: True))
        got = p.predict(image, tile=32)["prediction"]
    assert isinstance(got, np.ndarray)
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_layout_round_trip_for_channel_last_and_batchless_tensors():
    from runner.inference.geometry import Layout
    from runner.inference.package import AxisInfo, TensorInfo

    def axis(a, kind, size):
        return AxisInfo(id=a, type=kind, rule=SizeRule("fixed", size=size) if size else SizeRule("any"))

    canonical = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)  # (B, C, Y, X)
    byxc = TensorInfo(
        "t",
        (
            axis("batch", "batch", 0),
            axis("y", "space", 0),
            axis("x", "space", 0),
            axis("channel", "channel", 3),
        ),
    )
    layout = Layout(byxc, ("y", "x"), ("y", "x"))
    model = layout.to_model(canonical, (3,))
    assert model.shape == (2, 4, 5, 3)
    np.testing.assert_array_equal(model[1, 2, 3], canonical[1, :, 2, 3])
    back, sizes = layout.to_canonical(model)
    np.testing.assert_array_equal(back, canonical)
    assert sizes == (3,)
    cyx = TensorInfo("t", (axis("channel", "channel", 3), axis("y", "space", 0), axis("x", "space", 0)))
    layout = Layout(cyx, ("y", "x"), ("y", "x"))
    assert layout.to_model(canonical[:1], (3,)).shape == (3, 4, 5)
    np.testing.assert_array_equal(layout.to_canonical(canonical[0])[0], canonical[:1])


def test_tta_averages_mirrored_predictions(tmp_path):
    """With --tta the output is the mean of the network's outputs on the 4 mirror images, flipped back."""
    from runner.inference import Predictor

    pkg_path = build_package(tmp_path / "pkg", ndim=2).folder
    image = np.random.default_rng(0).random((1, 64, 80)).astype(np.float32)
    with Predictor(pkg_path, device="cpu") as predictor:
        # averaged before the rdf's output ops (sigmoid here), so compare raw outputs
        plain = predictor.predict(image, postprocess=False)
        tta = predictor.predict(image, tta=True, postprocess=False)
        expected = 0
        for axes in ((), (1,), (2,), (1, 2)):
            flipped = np.flip(image, axes) if axes else image
            out = next(iter(predictor.predict(np.ascontiguousarray(flipped), postprocess=False).values()))
            expected = expected + (np.flip(out, axes) if axes else out)
    (name,) = plain
    np.testing.assert_allclose(tta[name], expected / 4, atol=1e-5)
    assert np.abs(tta[name] - plain[name]).max() > 1e-4  # the tiny net is not mirror-symmetric


@pytest.mark.parametrize("available,expected", [(None, 2048), (1000, 2048), (10000, 5000), (10**6, 16384)])
def test_cpu_memory_budget_follows_available_memory(monkeypatch, available, expected):
    from runner.inference import planning

    monkeypatch.setattr(planning, "_available_memory_mb", lambda: available)
    assert planning.default_cpu_memory_mb() == expected


@pytest.fixture(scope="module")
def raw_package(tmp_path_factory):
    """No per-sample normalisation: a region is normalised like the whole image."""
    return build_package(tmp_path_factory.mktemp("raw") / "p", preprocessing="none", formats=("onnx",))


@pytest.mark.parametrize("border", ["image", "pad"])
def test_region_of_a_larger_image_equals_the_whole_pass(raw_package, border):
    """Blocks of a distributed run: a region with enough real context equals the whole image's pass there,
    also at the image borders (padded as the whole pass is) and with the same pooling phase."""
    image = _rand((1, 101, 87), seed=7)
    with Predictor(raw_package.folder, device="cpu", border=border) as p:
        whole = p.predict(image)["prediction"]
        for (y0, y1), (x0, x1) in [((0, 60), (0, 50)), ((37, 101), (23, 87)), ((20, 90), (0, 87))]:
            part = p.predict(image[:, y0:y1, x0:x1], region=((y0, x0), (101, 87)))["prediction"]
            keep_y = slice(0 if y0 == 0 else 8, None if y1 == 101 else -8)  # the halo of real context
            keep_x = slice(0 if x0 == 0 else 8, None if x1 == 87 else -8)
            np.testing.assert_allclose(
                part[:, keep_y, keep_x], whole[:, y0:y1, x0:x1][:, keep_y, keep_x], atol=1e-5
            )


def test_receptive_field_tells_local_from_global_networks():
    """A box filter is local (its radius is measured); subtracting the image mean is global (a one-pixel
    change moves it by less than the tolerance, the far-input probe catches it); a box wider than the probe
    is capped, not called global, when the budget has no room for a larger probe."""
    from runner.inference.halo import receptive_field

    rules = [SizeRule("parameterized", min=16, step=16)] * 2

    def local(b):
        return [_box_filter(b[0], 5)]

    def global_mean(b):
        x = b[0].astype(np.float64)
        return [(x - x.mean(axis=(2, 3), keepdims=True)).astype(np.float32)]

    def wide(b):
        return [_box_filter(b[0], 140)]

    kw = {"channels": [1], "rules": rules, "ratios": [(1, 1)]}
    rf = receptive_field(local, **kw)
    assert all(5 <= r <= 6 for r in rf.radius) and not rf.global_ops and not rf.capped
    assert receptive_field(global_mean, **kw).global_ops
    capped = receptive_field(wide, max_voxels=256 * 256, **kw)
    assert capped.capped and not capped.global_ops and capped.radius == (64, 64)

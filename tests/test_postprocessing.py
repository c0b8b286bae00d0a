"""Post-processors: targets made from ground truth come back as the same instances; registry and bad input."""

from __future__ import annotations

import numpy as np
import pytest
from stardist.matching import matching

from runner.errors import UserError
from runner.postprocessing import (
    Params,
    get_postprocessor,
    list_postprocessors,
    register,
    resolve_threshold,
    run_pipeline,
    run_postprocessor,
)
from runner.postprocessing.params import otsu
from runner.postprocessing.watershed import CODES
from runner.synthetic import random_blobs, render
from runner.targets import TargetOptions, make_targets


def _noisy(targets: np.ndarray, code: str, seed: int, sigma: float = 0.1) -> np.ndarray:
    """Gaussian noise on every channel, binary channels clipped to [0, 1] like sigmoid outputs."""
    from runner.targets import split_code

    rng = np.random.default_rng(seed)
    out = targets + rng.normal(0, sigma, targets.shape).astype(np.float32)
    for i, t in enumerate(split_code(code)):
        if t in "BCMP":
            out[i] = np.clip(out[i], 0, 1)
    return out


@pytest.mark.parametrize("code", CODES)
@pytest.mark.parametrize("ndim", [2, 3])
def test_targets_round_trip(code, ndim, blobs2d, blobs3d):
    gt = blobs2d if ndim == 2 else blobs3d
    labels = run_postprocessor(f"watershed_{code.lower()}", make_targets(gt, code))
    m = matching(gt, labels, thresh=0.5)
    assert m.accuracy == 1.0, (code, m)
    assert m.mean_matched_score >= 0.95, (code, m.mean_matched_score)


@pytest.mark.parametrize("code", CODES)
@pytest.mark.parametrize("ndim", [2, 3])
def test_noisy_round_trip(code, ndim, blobs2d, blobs3d):
    gt = blobs2d if ndim == 2 else blobs3d
    targets = make_targets(gt, code)
    for seed in range(2):
        labels = run_postprocessor(f"watershed_{code.lower()}", _noisy(targets, code, seed))
        m = matching(gt, labels, thresh=0.5)
        assert m.accuracy >= 0.9, (code, seed, m)


@pytest.mark.parametrize("code", ["BCD", "BC", "Dv2"])
def test_anisotropic_round_trip(code):
    gt = random_blobs((24, 64, 64), 10, radius=(6.0, 9.0), seed=5)
    res = (2.0, 1.0, 1.0)
    targets = make_targets(gt, code, TargetOptions(resolution=res))
    labels = run_postprocessor(f"watershed_{code.lower()}", targets, resolution=res)
    m = matching(gt, labels, thresh=0.5)
    assert m.accuracy == 1.0 and m.mean_matched_score >= 0.95


def test_resolution_scales_expansion():
    """BP's contour-restoring expansion is a physical distance: 1 unit reaches y/x neighbours, not z at 2."""
    gt = np.zeros((9, 32, 32), np.uint32)
    gt[2:7, 8:24, 8:24] = 1
    targets = make_targets(gt, "BP", TargetOptions(resolution=(2.0, 1.0, 1.0)))
    iso = run_postprocessor("watershed_bp", targets)
    aniso = run_postprocessor("watershed_bp", targets, resolution=(2.0, 1.0, 1.0))
    assert (iso > 0).sum() > (aniso > 0).sum()
    assert (aniso[:, 8:24, 8:24] > 0).any(axis=(1, 2)).sum() == 3  # z kept to the B slices, y/x grown back


def test_alias_matches_code_method(blobs2d):
    targets = make_targets(blobs2d, "BCD")
    a = run_postprocessor("watershed", targets, {"code": "BCD", "th_distance": 0.4})
    b = run_postprocessor("watershed_bcd", targets, {"th_distance": 0.4})
    np.testing.assert_array_equal(a, b)
    with pytest.raises(UserError, match="th_point"):
        run_postprocessor("watershed", targets, {"code": "BCD", "th_point": 0.5})
    with pytest.raises(UserError, match="needs 2 channels"):
        run_postprocessor("watershed", targets, {"code": "BC"})


def test_auto_thresholds(blobs2d):
    targets = make_targets(blobs2d, "BCD")
    params = {"th_binary": "auto", "th_contour": "auto", "th_foreground": "auto"}
    m = matching(blobs2d, run_postprocessor("watershed_bcd", targets, params), thresh=0.5)
    assert m.accuracy == 1.0
    values = np.concatenate([np.full(100, 0.1), np.full(300, 0.8)])
    assert 0.1 < otsu(values) < 0.8
    assert resolve_threshold(0.3, values) == 0.3 and resolve_threshold("auto", values) == otsu(values)


def test_debug_maps(blobs2d):
    debug: dict = {}
    labels = run_postprocessor("watershed_bcd", make_targets(blobs2d, "BCD"), debug=debug)
    assert set(debug) >= {"seeds", "foreground", "surface"}
    for arr in debug.values():
        assert arr.shape == blobs2d.shape
    assert debug["foreground"].dtype == bool
    assert np.array_equal(debug["foreground"], blobs2d > 0)
    assert (labels[debug["seeds"] > 0] > 0).all()


@pytest.mark.parametrize("ndim", [2, 3])
def test_foreground_methods(ndim, blobs3d):
    gt = random_blobs((256, 256), 40, radius=(6.0, 11.0), seed=1) if ndim == 2 else blobs3d
    prob = (gt > 0).astype(np.float32)[None]
    ws = run_postprocessor("fg_watershed", prob)
    cc = run_postprocessor("threshold_cc", prob)
    m_ws, m_cc = matching(gt, ws, thresh=0.5), matching(gt, cc, thresh=0.5)
    assert m_ws.accuracy >= 0.85
    assert m_ws.accuracy > m_cc.accuracy  # touching objects: components merge them, the watershed splits
    separate = random_blobs(gt.shape, 8, radius=(6.0, 9.0), touching=False, seed=3)
    m = matching(
        separate, run_postprocessor("threshold_cc", (separate > 0).astype(np.float32)[None]), thresh=0.5
    )
    assert m.accuracy == 1.0


def test_foreground_channel_choice():
    gt = random_blobs((64, 64), 5, touching=False, seed=4)
    pred = np.stack([1.0 - (gt > 0), (gt > 0)]).astype(np.float32)
    labels = run_postprocessor("threshold_cc", pred, {"channel": -1})
    assert matching(gt, labels, thresh=0.5).accuracy == 1.0
    with pytest.raises(UserError, match="channel=2 does not exist"):
        run_postprocessor("threshold_cc", pred, {"channel": 2})


@pytest.mark.parametrize("ndim", [2, 3])
def test_classical_on_raw_image(ndim, blobs3d):
    gt = random_blobs((256, 256), 40, radius=(6.0, 11.0), seed=1) if ndim == 2 else blobs3d
    image = render(gt, seed=1)[None]
    for threshold in ("otsu", "local") if ndim == 2 else ("otsu",):
        labels = run_postprocessor("classical", image, {"threshold": threshold})
        assert matching(gt, labels, thresh=0.5).accuracy >= 0.8, threshold
    dark = run_postprocessor("classical", -image, {"objects": "dark"})
    assert matching(gt, dark, thresh=0.5).accuracy >= 0.8
    assert get_postprocessor("classical").input == "image"


def test_classical_intensity_split():
    """Objects brighter in the middle are split at intensity valleys."""
    gt = random_blobs((128, 128), 15, radius=(7.0, 10.0), seed=6)
    d = make_targets(gt, "D")[0]
    image = (0.1 + np.sqrt(d) + np.random.default_rng(0).normal(0, 0.03, d.shape)).astype(np.float32)[None]
    split = run_postprocessor("classical", image, {"split": "intensity"})
    none = run_postprocessor("classical", image, {"split": "none"})
    assert matching(gt, split, thresh=0.5).accuracy >= 0.9
    assert split.max() > none.max()


def test_registry_lists_and_registers():
    names = {p.name for p in list_postprocessors()}
    assert {f"watershed_{c.lower()}" for c in CODES} | {"fg_watershed", "threshold_cc", "classical"} <= names
    for pp in list_postprocessors():
        assert pp.description and pp.params_model.model_config.get("extra") == "forbid"
        for field in pp.params_model.model_fields.values():
            assert field.description, (pp.name, field)

    class DemoParams(Params):
        level: float = 0.5

    @register("_test_demo", params=DemoParams, n_channels=1)
    def demo(prediction, params, *, resolution=None, debug=None):
        """Threshold demo."""
        return prediction[0] > params.level

    try:
        pp = get_postprocessor("_test_demo")
        assert pp.description == "Threshold demo." and pp.n_channels == 1
        out = run_postprocessor("_test_demo", np.ones((1, 4, 4), np.float32))
        assert out.dtype == np.uint32 and out.sum() == 16
    finally:
        from runner.postprocessing.registry import REGISTRY

        REGISTRY.pop("_test_demo", None)


@pytest.mark.parametrize(
    ("name", "pred", "params", "match"),
    [
        (
            "no_such_method",
            np.zeros((3, 8, 8)),
            None,
            "unknown post-processor 'no_such_method'; known: .*watershed_bcd",
        ),
        ("watershed_bcd", np.zeros((2, 8, 8)), None, "needs the 3 channels BCD, but the prediction has 2"),
        ("watershed_bcd", np.zeros((3, 8, 8)), {"th_bianry": 0.5}, "th_bianry: unknown param"),
        ("watershed_bcd", np.zeros((3, 8, 8)), {"th_binary": 1.5}, "th_binary: must be <= 1.0"),
        ("watershed_bcd", np.zeros((3, 8, 8)), {"min_size": -1}, "min_size"),
        ("watershed_bcd", np.zeros((3, 8, 8)), {"th_binary": "otsu"}, "th_binary"),
        ("watershed_bcd", np.zeros((8, 8)), None, "axes c,\\(z,\\)y,x"),
    ],
)
def test_bad_input(name, pred, params, match):
    with pytest.raises(UserError, match=match):
        run_postprocessor(name, pred.astype(np.float32), params)


def test_nan_and_resolution_errors():
    pred = np.zeros((3, 8, 8), np.float32)
    pred[1, 2, 2] = np.nan
    with pytest.raises(UserError, match="1 NaN"):
        run_postprocessor("watershed_bcd", pred)
    with pytest.raises(UserError, match="resolution"):
        run_postprocessor("watershed_bcd", np.zeros((3, 8, 8), np.float32), resolution=(1.0, 1.0, 1.0))


def test_pipeline_passes_foreground_to_voronoi(blobs2d):
    targets = make_targets(blobs2d, "BC")
    plain = run_pipeline(targets, "watershed_bc", {"min_size": 0}, ["remove_small:min_size=150"])
    grown = run_pipeline(targets, "watershed_bc", {"min_size": 0}, ["remove_small:min_size=150", "voronoi"])
    assert (grown > 0).sum() > (plain > 0).sum()
    assert ((grown > 0) <= (blobs2d > 0)).all()  # stays inside the method's foreground


def test_pipeline_refuses_filters_on_overlapping_stacks():
    from runner.postprocessing import PostProcessor

    def stack(prediction, params, *, resolution=None, debug=None):
        return np.stack([prediction[0] > 0.5, prediction[0] > 0.2]).astype(np.uint32)

    pp = PostProcessor("_test_stack", "Stack demo.", Params, stack, n_channels=1, overlapping=True)
    pred = np.random.default_rng(0).random((1, 8, 8)).astype(np.float32)
    assert run_pipeline(pred, pp).shape == (2, 8, 8)
    with pytest.raises(UserError, match="overlapping stack of 2 objects"):
        run_pipeline(pred, pp, None, ["remove_small:min_size=2"])

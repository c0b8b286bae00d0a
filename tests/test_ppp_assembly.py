"""PatchPerPix assembly: exact reassembly of ideal patches (2D, 3D, crossing worms), agreement with the dense
reference implementation of Eq. 3-6, graceful degradation under noise, registry and CLI."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from typer.testing import CliRunner

from runner.cli import app
from runner.errors import UserError
from runner.io import write_tiff
from runner.labelops import relabel_sequential
from runner.metrics import evaluate_image
from runner.postprocessing import get_postprocessor, run_postprocessor
from runner.postprocessing.ppp import consensus as cons
from runner.postprocessing.ppp import reference as ref
from runner.postprocessing.ppp.patchperpix import assemble
from runner.synthetic import random_blobs, random_worms
from runner.targets.ppp import ppp_targets


def _accuracy(gt, pred, threshold, *, overlapping=False) -> float:
    return evaluate_image(gt, pred, thresholds=(threshold,), overlapping=overlapping).at(threshold).accuracy


def _noisy(targets: np.ndarray, sigma: float, seed: int = 1, *, all_channels: bool = False) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = targets.copy()
    part = slice(None) if all_channels else slice(1, -1)
    out[part] = np.clip(targets[part] + rng.normal(0, sigma, targets[part].shape), 0, 1)
    return out.astype(np.float32)


@pytest.mark.parametrize("partition", ["cc", "mws"])
def test_ideal_patches_reassemble_2d(blobs2d, partition):
    pred = ppp_targets(blobs2d, (25, 25))
    result = assemble(pred, {"patch": (25, 25), "partition": partition})
    assert result.instances.shape == blobs2d.shape and result.instances.dtype == np.uint32
    assert result.instances.max() == blobs2d.max()
    assert _accuracy(blobs2d, result.instances, 0.9) == 1.0
    assert result.n_selected < result.n_patches / 10  # thin-out keeps few patches


def test_ideal_patches_reassemble_3d():
    labels = random_blobs((24, 48, 48), 8, radius=(5.0, 8.0), seed=3)
    pred = ppp_targets(labels, (9, 9, 9))
    result = assemble(pred, {"patch": (9, 9, 9)})
    assert result.instances.shape == labels.shape
    assert _accuracy(labels, result.instances, 0.9) == 1.0


@pytest.mark.parametrize("seed", [0, 1, 3])
def test_ideal_patches_reassemble_crossing_worms(seed):
    worms = random_worms((128, 128), 8, seed=seed)
    assert ((worms > 0).sum(0) >= 2).any()
    pred = ppp_targets(worms, (25, 25), overlapping=True)
    stack = run_postprocessor("patchperpix", pred, {"patch": (25, 25), "output": "stack", "partition": "mws"})
    assert stack.ndim == 3 and len(stack) == len(worms)
    assert _accuracy(worms, stack, 0.9, overlapping=True) == 1.0
    # overlap pixels belong to both worms in the stack (the cover need not reach every one from both sides),
    # and to one of them in the label image
    overlap = (worms > 0).sum(0) >= 2
    assert ((stack > 0).sum(0)[overlap] >= 2).mean() >= 0.9
    labels = run_postprocessor("patchperpix", pred, {"patch": (25, 25)})
    assert labels.shape == (128, 128) and (labels[overlap] > 0).all()
    assert _accuracy(worms, labels, 0.8, overlapping=True) == 1.0


@pytest.mark.parametrize("shape,patch,t", [((26, 24), (5, 7), 0.5), ((10, 14, 12), (3, 5, 5), 0.7)])
def test_consensus_and_scores_match_dense_reference(shape, patch, t):
    labels = random_blobs(shape, 5, radius=(3.0, 5.0), seed=1)
    pred = _noisy(ppp_targets(labels, patch), 0.3)
    pred[-1] = 0
    pred[1:-1] = cons.quantized(pred[1:-1])  # the 8-bit grid the assembly works on
    ndim = len(shape)
    pred3 = cons.as_3d(pred, ndim)
    patch3 = (1, *patch) if ndim == 2 else patch
    k = int(np.prod(patch))
    fmask = pred3[0] > 0.5
    ps = cons.prepare(pred3[1 : 1 + k], fmask, None, t, patch3)
    aff, score = cons.consensus_and_scores(ps)
    vals, _ = ref.dense_patches(pred3, fmask, np.zeros_like(fmask), patch3)
    daff, dmap = ref.dense_consensus(vals, patch3, t)
    dscore = ref.dense_scores(vals, daff, dmap, patch3, t)
    theirs = daff.reshape(len(daff), -1)[len(daff) // 2 :, ps.fpos].T  # positive half, foreground rows
    ours = np.where(aff == cons.UNCOVERED, np.nan, aff / cons.AFF_SCALE)
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs))
    np.testing.assert_allclose(ours, theirs, atol=2e-5, equal_nan=True)
    assert np.isfinite(theirs).sum() > 1000
    ds = dscore.ravel()[ps.cpos]
    np.testing.assert_array_equal(np.isfinite(ds), np.isfinite(score))
    np.testing.assert_allclose(score[np.isfinite(score)], ds[np.isfinite(ds)], atol=1e-6)


@pytest.mark.parametrize("partition", ["cc", "mws"])
@pytest.mark.parametrize("shape,patch", [((40, 40), (7, 7)), ((12, 24, 24), (5, 5, 5))])
def test_assembly_matches_dense_reference(shape, patch, partition):
    labels = random_blobs(shape, 8, radius=(3.0, 6.0), seed=3)
    pred = _noisy(ppp_targets(labels, patch), 0.3, all_channels=True)  # noisy foreground and overlap too
    ours = assemble(pred, {"patch": patch, "partition": partition}).instances
    dense = ref.dense_assemble(pred, patch=patch, partition_method=partition)
    assert ours.max() > 3
    np.testing.assert_array_equal(ours, relabel_sequential(dense)[0])  # ids by first appearance


def test_noisy_patches_degrade_gracefully(blobs2d):
    ideal = ppp_targets(blobs2d, (15, 15))
    mild = run_postprocessor("patchperpix", _noisy(ideal, 0.2), {"patch": (15, 15), "partition": "mws"})
    assert _accuracy(blobs2d, mild, 0.9) == 1.0
    strong = _noisy(ideal, 0.4)  # ~11% of the patch entries on the wrong side of 0.5
    mws = run_postprocessor("patchperpix", strong, {"patch": (15, 15), "partition": "mws"})
    cc = run_postprocessor("patchperpix", strong, {"patch": (15, 15), "partition": "cc"})
    assert _accuracy(blobs2d, mws, 0.5) >= 0.85
    assert _accuracy(blobs2d, cc, 0.5) >= 0.4  # positive-subgraph CC merges more under noise


def test_registry_infers_layout_and_fills_debug(blobs2d):
    pp = get_postprocessor("patchperpix")
    assert pp.overlapping and "patch" in pp.params_model.model_fields
    pred = ppp_targets(blobs2d, (9, 9))
    debug: dict = {}
    labels = run_postprocessor("patchperpix", pred, {}, debug=debug)  # 83 channels -> 9x9 + overlap
    assert _accuracy(blobs2d, labels, 0.9) == 1.0
    assert debug["foreground"].shape == blobs2d.shape and (debug["foreground"] == (blobs2d > 0)).all()
    assert set(np.unique(debug["seeds"])) == set(range(int(labels.max()) + 1))
    no_overlap = run_postprocessor("patchperpix", pred[:-1], {"patch": [9, 9]})  # without the overlap class
    np.testing.assert_array_equal(no_overlap, labels)


def test_min_size_and_empty_foreground(blobs2d):
    pred = ppp_targets(blobs2d, (9, 9))
    sizes = np.bincount(blobs2d.ravel())[1:]
    cut = int(np.sort(sizes)[3]) + 1
    labels = run_postprocessor("patchperpix", pred, {"min_size": cut})
    assert labels.max() == (sizes >= cut).sum()
    stack = run_postprocessor("patchperpix", pred, {"min_size": cut, "output": "stack"})
    assert len(stack) == (sizes >= cut).sum() and set(np.unique(stack[-1])) == {0, len(stack)}
    empty = np.zeros_like(pred)
    assert not run_postprocessor("patchperpix", empty, {}).any()
    assert run_postprocessor("patchperpix", empty, {"output": "stack"}).shape == (0, *blobs2d.shape)


@pytest.mark.parametrize(
    "shape,params,match",
    [
        ((83, 16, 16), {"patch": [7, 7]}, "needs 50 or 51 channels"),
        ((30, 16, 16), {}, "cannot infer"),
        ((83, 16, 16), {"patch": [9, 9, 9]}, "3D but the prediction is 2D"),
        ((83, 16, 16), {"patch": [8, 8]}, "odd"),
        ((83, 16, 16), {"threshold": 0.3}, "threshold"),
        ((83, 16, 16), {"partition": "louvain"}, "partition"),
    ],
)
def test_bad_params_and_shapes(shape, params, match):
    with pytest.raises(UserError, match=match):
        run_postprocessor("patchperpix", np.zeros(shape, np.float32), params)


def test_logits_are_refused():
    pred = np.full((11, 8, 8), 3.0, np.float32)
    with pytest.raises(UserError, match=r"probabilities in \[0, 1\]"):
        run_postprocessor("patchperpix", pred, {"patch": [3, 3]})


def test_cli_postprocess(tmp_path, blobs2d):
    preds = tmp_path / "preds"
    preds.mkdir()
    write_tiff(preds / "a.tif", ppp_targets(blobs2d, (9, 9)), axes="cyx")
    write_tiff(preds / "b.tif", ppp_targets(blobs2d[::-1], (9, 9)), axes="cyx")
    out = tmp_path / "out"
    runner = CliRunner()
    result = runner.invoke(
        app, ["postprocess", str(preds), "--method", "patchperpix", "--param", "patch=9,9", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert _accuracy(blobs2d, tifffile.imread(out / "a.tif"), 0.9) == 1.0
    assert _accuracy(blobs2d[::-1], tifffile.imread(out / "b.tif"), 0.9) == 1.0
    worms = random_worms((64, 64), 5, seed=2)
    write_tiff(tmp_path / "worms.tif", ppp_targets(worms, (17, 17), overlapping=True), axes="cyx")
    stack_out = tmp_path / "stack"
    result = runner.invoke(
        app,
        [
            "postprocess",
            str(tmp_path / "worms.tif"),
            "--method",
            "patchperpix",
            "--param",
            "output=stack",
            "--param",
            "partition=mws",
            "--out",
            str(stack_out),
        ],
    )
    assert result.exit_code == 0, result.output
    stack = tifffile.imread(stack_out / "worms.tif")
    assert stack.shape[1:] == (64, 64) and _accuracy(worms, stack, 0.9, overlapping=True) == 1.0


def test_cli_postprocess_bad_patch(tmp_path, blobs2d):
    preds = tmp_path / "preds"
    preds.mkdir()
    write_tiff(preds / "a.tif", ppp_targets(blobs2d, (9, 9)), axes="cyx")
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app, ["postprocess", str(preds), "--method", "patchperpix", "--param", "patch=7,7", "--out", str(out)]
    )
    assert result.exit_code == 2
    assert "channels" in result.output and "a.tif" in result.output
    assert not out.exists()

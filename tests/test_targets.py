"""Target channels on shapes with hand-checkable answers, 2D and 3D, and the per-instance reference."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from runner.errors import UserError
from runner.targets import (
    CODES,
    GradientAnomalyOptions,
    TargetOptions,
    channel_specs,
    gradient_anomaly_weights,
    make_targets,
)


def disk(shape, center, radius):
    yy, xx = np.ogrid[: shape[0], : shape[1]]
    return (yy - center[0]) ** 2 + (xx - center[1]) ** 2 <= radius**2


@pytest.fixture
def two_touching():
    """Two 10x10 squares sharing an edge at x=15|16, plus an isolated square."""
    labels = np.zeros((30, 40), np.uint32)
    labels[5:15, 6:16] = 4
    labels[5:15, 16:26] = 9
    labels[20:28, 30:38] = 2
    return labels


def test_inner_contour_b_plus_c_is_the_object(two_touching):
    b, c, m = make_targets(two_touching, "BCM")
    np.testing.assert_array_equal((b + c) > 0, two_touching > 0)
    np.testing.assert_array_equal(m > 0, two_touching > 0)
    assert not (b * c).any()
    # each square keeps a 1 px ring: 10x10 square -> 36 contour px, 8x8 -> 28
    assert c[5:15, 6:16].sum() == 36 and c[5:15, 16:26].sum() == 36 and c[20:28, 30:38].sum() == 28
    # the shared edge is contour on both sides
    assert c[5:15, 15].all() and c[5:15, 16].all()


def test_contour_width_and_modes(two_touching):
    (c2,) = make_targets(two_touching, "C", TargetOptions(contour_width=2))
    assert c2[20:28, 30:38].sum() == 64 - 16  # 8x8 minus the 4x4 core
    (outer,) = make_targets(two_touching, "C", TargetOptions(contour_mode="outer"))
    assert not (outer.astype(bool) & (two_touching > 0)).any()
    assert outer[19, 30:38].all() and outer[28, 30:38].all()
    (thick,) = make_targets(two_touching, "C", TargetOptions(contour_mode="thick"))
    (inner,) = make_targets(two_touching, "C")
    np.testing.assert_array_equal(thick, np.maximum(inner, outer))


def test_distance_channel_values(two_touching):
    (d,) = make_targets(two_touching, "D", TargetOptions(distance_norm="none"))
    # 8x8 square: border pixels 1, centre 2x2 block at distance 4
    sq = d[20:28, 30:38]
    assert sq[0].tolist() == [1] * 8 and sq[3:5, 3:5].min() == 4 and sq.max() == 4
    assert d[two_touching == 0].max() == 0
    (dn,) = make_targets(two_touching, "D")
    for lab in (2, 4, 9):
        assert dn[two_touching == lab].max() == pytest.approx(1.0)
    (di,) = make_targets(two_touching, "D", TargetOptions(distance_norm="image"))
    assert di.max() == pytest.approx(1.0) and di[20:28, 30:38].max() == pytest.approx(4 / 5)


def test_distance_honours_resolution():
    labels = np.zeros((9, 40, 40), np.uint32)
    labels[:, 5:35, 5:35] = 1
    (iso,) = make_targets(labels, "D", TargetOptions(distance_norm="none"))
    (ani,) = make_targets(labels, "D", TargetOptions(distance_norm="none", resolution=(4.0, 1.0, 1.0)))
    # the image border is not an edge: in z the object never ends, so distances come from y/x only
    assert iso[4, 20, 20] == pytest.approx(15) and ani[4, 20, 20] == pytest.approx(15)
    labels[0] = 0
    labels[-1] = 0
    (iso,) = make_targets(labels, "D", TargetOptions(distance_norm="none"))
    (ani,) = make_targets(labels, "D", TargetOptions(distance_norm="none", resolution=(2.0, 1.0, 1.0)))
    assert iso[4, 20, 20] == pytest.approx(4)  # 4 slices to the empty z=0 plane
    assert ani[4, 20, 20] == pytest.approx(8)  # ... of 2 units each
    with pytest.raises(UserError, match="resolution"):
        make_targets(labels, "D", TargetOptions(resolution=(1.0, 1.0)))


def test_points_are_disks_at_object_centres(two_touching):
    (p,) = make_targets(two_touching, "P", TargetOptions(point_radius=2))
    lab, n = ndi.label(p > 0)
    assert n == 3
    # a radius-2 disk has 13 pixels; each disk stays inside its own object
    sizes = np.bincount(lab.ravel())[1:]
    assert sorted(sizes.tolist()) == [13, 13, 13]
    for k in range(1, 4):
        assert len(np.unique(two_touching[lab == k])) == 1
    # curved object: centre must lie inside (the centroid of a C shape would not)
    c_shape = np.zeros((40, 40), np.uint32)
    c_shape[disk((40, 40), (20, 20), 15) & ~disk((40, 40), (20, 26), 12)] = 1
    (pc,) = make_targets(c_shape, "P", TargetOptions(point_radius=0))
    assert pc.sum() == 1 and c_shape[pc > 0].item() == 1


def test_dv2_is_signed(two_touching):
    b, c, dv2 = make_targets(two_touching, "BCDv2")
    assert dv2.min() == pytest.approx(-1.0) and dv2.max() == pytest.approx(1.0)
    assert (dv2[c > 0] == 0).all()
    assert (dv2[b > 0] > 0).all()
    assert (dv2[two_touching == 0] < 0).all()


def test_3d_ellipsoid_channels():
    zz, yy, xx = np.ogrid[:21, :31, :31]
    ball = ((zz - 10) ** 2 + (yy - 15) ** 2 + (xx - 15) ** 2) <= 8**2
    labels = ball.astype(np.uint32) * 3
    b, c, d = make_targets(labels, "BCD")
    np.testing.assert_array_equal((b + c) > 0, ball)
    # contour = voxels with a face-neighbour outside
    eroded = ndi.binary_erosion(ball, ndi.generate_binary_structure(3, 1))
    np.testing.assert_array_equal(c > 0, ball & ~eroded)
    assert d[10, 15, 15] == pytest.approx(1.0)  # centre is the maximum of the normalised distance
    (p,) = make_targets(labels, "P", TargetOptions(point_radius=2))
    assert p[10, 15, 15] == 1 and p.sum() == 33  # a radius-2 ball of voxels


@pytest.mark.parametrize("code", sorted(CODES))
def test_every_code_shapes_and_ranges(code, blobs2d, blobs3d):
    if code == "PPP":
        pytest.skip("PatchPerPix targets are tested in test_ppp*")
    for labels in (blobs2d, blobs3d):
        out = make_targets(labels, code)
        specs = channel_specs(code)
        assert out.shape == (len(specs), *labels.shape) and out.dtype == np.float32
        for spec, ch in zip(specs, out, strict=True):
            if spec.value_range:
                assert spec.value_range[0] - 1e-6 <= ch.min() and ch.max() <= spec.value_range[1] + 1e-6


def test_empty_labels():
    labels = np.zeros((16, 16), np.uint32)
    out = make_targets(labels, "BCDv2")
    assert not out.any()
    assert make_targets(labels, "BP").sum() == 0


def _reference_bcd(labels):
    """The usual per-object loop: crop each object, EDT it, write back."""
    b = np.zeros(labels.shape, np.float32)
    c = np.zeros_like(b)
    d = np.zeros_like(b)
    for sl_i, sl in enumerate(ndi.find_objects(labels)):
        if sl is None:
            continue
        pad = tuple(slice(max(s.start - 1, 0), s.stop + 1) for s in sl)
        crop = labels[pad] == sl_i + 1
        dist = ndi.distance_transform_edt(np.pad(crop, 1, constant_values=False))[(slice(1, -1),) * crop.ndim]
        # the image border is not an edge: objects touching it are measured as if they continued
        outside = np.pad(crop, 1, mode="edge")
        dist = ndi.distance_transform_edt(outside)[(slice(1, -1),) * crop.ndim]
        dist = np.where(crop, dist, 0)
        contour = crop & (dist <= 1)
        b[pad][crop & ~contour] = 1
        c[pad][contour] = 1
        d[pad][crop] = dist[crop] / dist.max()
    return np.stack([b, c, d])


def test_matches_per_instance_reference_away_from_border():
    from runner.synthetic import random_blobs

    labels = random_blobs((160, 160), 40, radius=(6, 10), seed=5)
    labels[:12] = labels[-12:] = 0
    labels[:, :12] = labels[:, -12:] = 0
    labels = labels * (labels > 0)
    from runner.labelops import relabel_sequential

    labels, _ = relabel_sequential(labels)
    ours = make_targets(labels, "BCD")
    ref = _reference_bcd(labels)
    np.testing.assert_allclose(ours, ref, atol=1e-6)


def test_gradient_anomaly_flags_touching_not_isolated(two_touching):
    w = gradient_anomaly_weights(two_touching, GradientAnomalyOptions(window_size=4, ga_factor=1.0))
    assert w.min() >= 1.0
    assert w[5:15, 14:18].max() > 1.3  # along the shared edge
    np.testing.assert_array_equal(w[17:], 1.0)  # isolated square and background far away
    assert w[10, 11] == 1.0  # the centre of a square is not an anomaly


def test_gradient_anomaly_overlap_highlight():
    stack = np.zeros((2, 30, 30), np.uint32)
    stack[0, 5:20, 5:20] = 1
    stack[1, 12:27, 12:27] = 1
    w = gradient_anomaly_weights(
        stack, GradientAnomalyOptions(ga_factor=0.0, overlap_highlight=0.5), overlapping=True
    )
    np.testing.assert_array_equal(w > 1, (stack > 0).sum(0) > 1)
    assert w.max() == pytest.approx(1.5)


def test_unknown_code_and_bad_options():
    with pytest.raises(UserError, match="unknown target code"):
        make_targets(np.zeros((4, 4), np.uint32), "BXQ")
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        TargetOptions(contour_width=0)
    with pytest.raises(ValidationError):
        TargetOptions(wrong_key=1)


@pytest.mark.parametrize("code", ["BCD", "BC", "BCM", "B", "C", "D", "M"])
@pytest.mark.parametrize("ndim", [2, 3])
def test_fused_path_equals_the_general_path(code, ndim):
    """B/C/D/M come from one fused pass over raw (non-sequential) ids; it must equal the channel-by-channel
    path over renumbered labels, for sparse ids and width-2 contours."""
    from runner.synthetic import random_blobs
    from runner.targets import channels

    shape = (96, 96) if ndim == 2 else (24, 40, 40)
    base = random_blobs(shape, 20, radius=(3, 8), seed=ndim).astype(np.uint64)
    tokens = channels.split_code(code)
    # gaps in the ids indexed directly; ids above the pixel count and above 2**22 renumbered first
    for factor, width in ((3, 1), (3, 2), (5003, 1), (50_000_003, 1)):
        labels = np.where(base > 0, base * factor + 7, 0).astype(np.uint32)
        options = TargetOptions(contour_width=width)
        assert channels._fused_eligible(labels, tokens, options)
        fused = channels.make_channels(labels, tokens, options)
        cache = channels._Cache(labels, options)
        general = np.stack([cache.get(t) for t in tokens]).astype(np.float32)
        np.testing.assert_allclose(fused, general, atol=1e-6)

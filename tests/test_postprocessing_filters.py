"""Each filter on a hand-made case; the filter-spec syntax; filter bad input."""

from __future__ import annotations

import numpy as np
import pytest

from runner.errors import UserError
from runner.postprocessing import FilterStep, apply_filters, list_filters, parse_filter
from runner.postprocessing.filters.merge import contacts
from runner.postprocessing.ops import expand_labels


def _disk(shape, centre, radius):
    yy, xx = np.ogrid[: shape[0], : shape[1]]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2


@pytest.fixture
def three_objects() -> np.ndarray:
    """Object 1: 25 px with a 1-px hole; 2: 33 px with a 2-px hole; 3: 20 px; a gap between 1 and 3."""
    a = np.zeros((12, 12), np.uint32)
    a[1:6, 1:6] = 1
    a[3, 3] = 0
    a[6:11, 1:8] = 2
    a[8, 3:5] = 0
    a[1:6, 7:11] = 3
    return a


def test_remove_small_and_large(three_objects):
    sizes = {i: int((three_objects == i).sum()) for i in (1, 2, 3)}
    assert sizes == {1: 24, 2: 33, 3: 20}
    small = apply_filters(three_objects, ["remove_small:min_size=21"])
    assert set(np.unique(small)) == {0, 1, 2} and np.array_equal(small == 1, three_objects == 1)
    large = apply_filters(three_objects, ["remove_large:max_size=30"])
    assert set(np.unique(large)) == {0, 1, 3}
    both = apply_filters(three_objects, [("size_range", {"min_size": 21, "max_size": 30})])
    assert set(np.unique(both)) == {0, 1}
    with pytest.raises(UserError, match="max_size"):
        apply_filters(three_objects, [("size_range", {"min_size": 30, "max_size": 21})])


def test_fill_holes(three_objects):
    out = apply_filters(three_objects, ["fill_holes"])
    assert out[3, 3] == 1 and (out[8, 3:5] == 2).all()
    assert (out[1:6, 6] == 0).all()  # the gap between objects 1 and 3 touches the border: not a hole
    limited = apply_filters(three_objects, ["fill_holes:max_hole_size=1"])
    assert limited[3, 3] == 1 and (limited[8, 3:5] == 0).all()


def test_fill_holes_3d_per_slice():
    vol = np.zeros((5, 10, 10), np.uint32)
    vol[1:4, 2:8, 2:8] = 7
    vol[1:4, 4:6, 4:6] = 0  # a tunnel along z, open to the background slices 0 and 4
    whole = apply_filters(vol, ["fill_holes"])
    per_slice = apply_filters(vol, ["fill_holes:per_slice=true"])
    assert (whole[1:4, 4:6, 4:6] == 0).all()  # connected to the background above and below in 3D
    assert (per_slice[1:4, 4:6, 4:6] == 7).all()  # enclosed in every z plane


def test_z_median_removes_flicker():
    vol = np.zeros((7, 6, 6), np.uint32)
    vol[:, 1:5, 1:5] = 1
    vol[3, 1:5, 1:5] = 0  # object missing in one slice
    vol[5, 0, 0] = 4  # a one-slice speck
    out = apply_filters(vol, ["z_median:size=3"])
    assert (out[3, 1:5, 1:5] == 1).all()
    assert out[5, 0, 0] == 0
    assert np.array_equal(out[0], vol[0])


def test_yz_median_uses_y_too():
    vol = np.zeros((5, 12, 5), np.uint32)
    vol[:, 5:10, :] = 3
    vol[2, 7, 2] = 0  # a one-voxel hole: z and y neighbours are all 3
    vol[:, 2, 2] = 5  # a one-voxel-thin line along z in the background: the y neighbours say background
    out = apply_filters(vol, ["yz_median:size=3"])
    assert out[2, 7, 2] == 3
    assert (out[:, 2, 2] == 0).all()
    z_only = apply_filters(vol, ["z_median:size=3"])
    assert (z_only[:, 2, 2] == 5).all()  # along z alone the line is consistent


def test_z_filters_need_3d(three_objects):
    with pytest.raises(UserError, match="3D labels"):
        apply_filters(three_objects, ["z_median"])


def test_repair_large_merges_split_object():
    shape = (30, 44)
    big = _disk(shape, (15, 12), 10)
    cols = np.arange(shape[1])[None, :]
    labels = np.zeros(shape, np.uint32)
    labels[big & (cols < 12)] = 1
    labels[big & (cols >= 12)] = 2
    labels[12:15, 11:13] = 0  # a central hole at the cut
    neighbour = _disk(shape, (15, 28), 6) & (labels == 0)
    labels[neighbour] = 3
    out = apply_filters(labels, ["repair_large:min_size=100"])
    assert len(np.unique(out[big])) == 1 and out[15, 12] > 0  # merged and the hole filled
    assert np.array_equal(out == 3, labels == 3)  # a neighbour that barely touches is kept
    untouched = apply_filters(labels, ["repair_large:min_size=1000"])
    assert np.array_equal(untouched, labels)
    pairs, boundary = contacts(labels)
    assert {(int(a), int(b)) for a, b, _ in pairs} == {(1, 2), (2, 3)}
    assert (boundary[1:] > 0).all()


def test_voronoi_fills_mask_by_nearest_object():
    labels = np.zeros((20, 20), np.uint32)
    labels[5, 5], labels[5, 15], labels[15, 10] = 1, 2, 3
    full = apply_filters(labels, ["voronoi:mask=all"])
    assert (full > 0).all()
    assert full[0, 0] == 1 and full[0, 19] == 2 and full[19, 10] == 3 and full[5, 8] == 1 and full[5, 12] == 2
    pred = np.zeros((2, 20, 20), np.float32)
    pred[0, 2:18, 2:18] = 0.4
    pred[1, 2:18, 2:18] = 0.4  # B + C = 0.8 inside the square
    inside = apply_filters(labels, ["voronoi:channels=0,1,threshold=0.5"], prediction=pred)
    assert (inside[2:18, 2:18] > 0).all() and (inside[:2] == 0).all()
    limited = apply_filters(labels, ["voronoi:mask=all,max_distance=2"])
    assert limited[5, 7] == 1 and limited[5, 8] == 0
    fg = np.zeros((20, 20), bool)
    fg[:10] = True
    from_fg = apply_filters(labels, ["voronoi"], foreground=fg)
    assert (from_fg[:10] > 0).all() and (from_fg[10:] == 0).sum() == 199  # object 3's own pixel stays


def test_voronoi_needs_a_mask():
    labels = np.zeros((8, 8), np.uint32)
    labels[2, 2] = 1
    with pytest.raises(UserError, match="voronoi"):
        apply_filters(labels, ["voronoi"])
    with pytest.raises(UserError, match="channels=0,1"):
        apply_filters(labels, ["voronoi"], prediction=np.zeros((3, 8, 8), np.float32))


def test_expand_labels_honours_resolution():
    labels = np.zeros((9, 9, 9), np.uint32)
    labels[4, 4, 4] = 1
    grown = expand_labels(labels, 2.0, resolution=(4.0, 1.0, 1.0))
    assert grown[4, 4, 6] == 1 and grown[4, 6, 4] == 1
    assert grown[5, 4, 4] == 0  # one z step is 4 units away


def test_properties_filter():
    labels = np.zeros((40, 40), np.uint32)
    labels[_disk((40, 40), (10, 10), 7)] = 1
    labels[30:32, 2:38] = 2  # long thin line: low circularity
    labels[2:4, 30:32] = 3  # 4 px speck
    out = apply_filters(labels, ["properties:remove_if=npixels lt 10"])
    assert set(np.unique(out)) == {0, 1, 2}
    out = apply_filters(labels, ["properties:remove_if=npixels lt 10;circularity lt 0.3"])
    assert set(np.unique(out)) == {0, 1}
    both = apply_filters(labels, ["properties:remove_if=npixels gt 50,circularity lt 0.3"])  # comma = and
    assert set(np.unique(both)) == {0, 1, 3}
    with pytest.raises(UserError, match="unknown property 'roundness'"):
        apply_filters(labels, ["properties:remove_if=roundness lt 3"])


def test_filters_compose_in_order(three_objects):
    a = apply_filters(three_objects, ["fill_holes", "remove_small:min_size=25"])
    b = apply_filters(three_objects, ["remove_small:min_size=25", "fill_holes"])
    assert 1 in np.unique(a) and 1 not in np.unique(b)  # 24 px + 1 hole pixel = 25 only when filled first


def test_parse_filter_syntax():
    assert parse_filter("fill_holes") == FilterStep("fill_holes", {})
    assert parse_filter("remove-small:min_size=30") == FilterStep("remove_small", {"min_size": 30})
    step = parse_filter("voronoi:channels=0,1,threshold=auto")
    assert step.params == {"channels": [0, 1], "threshold": "auto"}
    step = parse_filter("properties:remove_if=npixels<=10,circularity<0.5")
    assert step.params == {"remove_if": "npixels<=10,circularity<0.5"}
    step = parse_filter("properties:remove_if=npixels lt 10,circularity lt 0.5,fill=1")
    assert step.params == {"remove_if": "npixels lt 10,circularity lt 0.5", "fill": 1}
    with pytest.raises(UserError, match="key=value"):
        parse_filter("remove_small:30")


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("no_such_filter", "unknown filter 'no_such_filter'; known filters: .*remove_small"),
        ("remove_small:min_sise=3", "min_sise: unknown param"),
        ("remove_small:min_size=-3", "min_size"),
        ("voronoi:threshold=2", "threshold"),
        (42, "cannot read filter spec"),
    ],
)
def test_filter_bad_input(three_objects, spec, match):
    with pytest.raises(UserError, match=match):
        apply_filters(three_objects, [spec])


def test_every_filter_documented():
    names = {f.name for f in list_filters()}
    assert {
        "remove_small",
        "remove_large",
        "fill_holes",
        "z_median",
        "yz_median",
        "repair_large",
        "voronoi",
        "properties",
    } <= names
    for flt in list_filters():
        assert flt.description
        for field in flt.params_model.model_fields.values():
            assert field.description

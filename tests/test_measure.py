"""Per-object measurements and the property filter: hand-computed shapes and scikit-image as reference."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.measure import perimeter as skimage_perimeter
from skimage.measure import regionprops

from runner.errors import UserError
from runner.measure import Condition, measure_labels, parse_conditions, remove_by_properties


def _disk(shape, centre, radius):
    yy, xx = np.ogrid[: shape[0], : shape[1]]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2


def _ball(shape, centre, radius):
    zz, yy, xx = np.ogrid[: shape[0], : shape[1], : shape[2]]
    return (zz - centre[0]) ** 2 + (yy - centre[1]) ** 2 + (xx - centre[2]) ** 2 <= radius**2


def test_2d_properties_match_skimage(blobs2d, image2d):
    table = measure_labels(blobs2d, image=image2d)
    props = regionprops(blobs2d, intensity_image=image2d)
    assert list(table["label"]) == [p.label for p in props]
    np.testing.assert_array_equal(table["npixels"], [p.area for p in props])
    np.testing.assert_allclose(table["perimeter"], [p.perimeter for p in props], rtol=0, atol=1e-9)
    np.testing.assert_allclose(table["mean_intensity"], [p.intensity_mean for p in props], rtol=1e-6)
    np.testing.assert_allclose(table["min_intensity"], [p.intensity_min for p in props], rtol=1e-6)
    np.testing.assert_allclose(table["max_intensity"], [p.intensity_max for p in props], rtol=1e-6)
    np.testing.assert_allclose(table["centroid_y"], [p.centroid[0] for p in props])
    np.testing.assert_array_equal(table["bbox_min_x"], [p.bbox[1] for p in props])
    np.testing.assert_array_equal(table["bbox_max_y"], [p.bbox[2] for p in props])
    extent = [max(p.bbox[2] - p.bbox[0], p.bbox[3] - p.bbox[1]) for p in props]
    np.testing.assert_array_equal(table["diameter"], extent)
    np.testing.assert_allclose(table["elongation"] * table["circularity"], 1.0)


def test_square_and_disk_by_hand():
    labels = np.zeros((40, 40), np.uint32)
    labels[5:15, 5:15] = 7  # 10x10 square
    labels[20, 2:5] = 4  # with a diagonal step: 3 pixels in a row plus one below-right
    labels[21, 5] = 4
    labels[_disk((40, 40), (28, 28), 8)] = 3
    table = measure_labels(labels, resolution=(0.5, 0.5))
    row = {int(lab): i for i, lab in enumerate(table["label"])}
    sq = row[7]
    # the contour through the border-pixel centres is 4 * 9 pixels long, times 0.5 um
    assert table["perimeter"][sq] == pytest.approx(36 * 0.5)
    assert table["area"][sq] == pytest.approx(100 * 0.25)
    # the bent line: ends weigh 0, the straight middle pixel 1, the bend (1 + sqrt 2) / 2 (skimage's table)
    assert table["perimeter"][row[4]] == pytest.approx(0.5 * (1 + (1 + np.sqrt(2)) / 2))
    assert table["perimeter"][row[4]] == pytest.approx(0.5 * skimage_perimeter(labels == 4))
    assert table["diameter"][sq] == pytest.approx(5.0)
    assert 0.85 < table["circularity"][row[3]] <= 1.1
    assert table["circularity"][sq] == pytest.approx(4 * np.pi * 100 / 36**2)


def test_one_pixel_object_has_nan_circularity():
    labels = np.zeros((5, 5), np.uint32)
    labels[2, 2] = 1
    table = measure_labels(labels)
    assert table["perimeter"][0] == 0
    assert np.isnan(table["circularity"][0])


def test_3d_ball_sphericity_and_surface():
    from skimage.measure import marching_cubes, mesh_surface_area

    labels = np.zeros((40, 40, 40), np.uint32)
    labels[_ball(labels.shape, (20, 20, 20), 12)] = 5
    labels[2:5, 2:5, 5:35] = 9  # a rod
    table = measure_labels(
        labels, resolution=(2.0, 1.0, 1.0), properties=["volume", "surface_area", "sphericity"]
    )
    assert list(table["label"]) == [5, 9]
    assert table["volume"][1] == pytest.approx(270 * 2.0)
    # the per-object crop gives the same mesh as marching cubes on the whole image with the voxel spacing
    verts, faces, _, _ = marching_cubes(
        np.pad(labels == 5, 1).astype(np.float32), 0.5, spacing=(2.0, 1.0, 1.0)
    )
    assert table["surface_area"][0] == pytest.approx(mesh_surface_area(verts, faces), rel=1e-9)
    unit = measure_labels(labels)
    ball, rod = 0, 1
    assert unit["surface_area"][ball] == pytest.approx(4 * np.pi * 12**2, rel=0.1)  # staircase: a bit more
    assert 0.75 < unit["sphericity"][ball] <= 1.05
    assert unit["sphericity"][rod] < 0.5 * unit["sphericity"][ball]
    assert "circularity" not in unit.names and "perimeter" not in unit.names
    assert unit["diameter"][ball] == 25


def test_empty_labels_give_empty_table():
    table = measure_labels(np.zeros((10, 10), np.uint16))
    assert len(table) == 0
    assert "perimeter" in table.names
    assert table.to_csv_text().splitlines()[0].startswith("label,npixels")


def test_parse_conditions_forms():
    expected = [[Condition("npixels", "lt", 100.0), Condition("circularity", "le", 0.7)]]
    assert parse_conditions("npixels lt 100 and circularity le 0.7") == expected
    assert parse_conditions(["npixels < 100 and circularity <= 0.7"]) == expected
    assert parse_conditions([[("npixels", "lt", 100), ("circularity", "le", 0.7)]]) == expected
    assert (
        parse_conditions(
            {"props": [["npixels", "circularity"]], "values": [[100, 0.7]], "signs": [["lt", "le"]]}
        )
        == expected
    )
    two = parse_conditions("area gt 5000; npixels lt 100 and circularity le 0.7")
    assert len(two) == 2 and two[0] == [Condition("area", "gt", 5000.0)]


@pytest.mark.parametrize("text", ["npixel lt 100", "npixels below 100", "npixels lt many", "npixels", ""])
def test_parse_conditions_rejects_bad_input(text):
    with pytest.raises(UserError):
        parse_conditions([text])


def test_remove_by_properties_applies_groups_in_order(blobs2d):
    full = measure_labels(blobs2d)
    small = full["npixels"] < 250
    round_ = full["circularity"] > 0.95
    kept, report = remove_by_properties(blobs2d, ["npixels lt 250", "circularity gt 0.95 and npixels ge 250"])
    assert list(report["label"]) == list(full["label"])
    np.testing.assert_array_equal(report["removed"], small | round_)
    np.testing.assert_array_equal(report["removed_by"], np.where(small, 1, np.where(round_, 2, 0)))
    remaining = set(np.unique(kept)) - {0}
    assert remaining == set(full["label"][~(small | round_)].tolist())
    # kept objects are untouched, removed ones are background
    for lab in remaining:
        assert np.array_equal(kept == lab, blobs2d == lab)
    assert kept.dtype == blobs2d.dtype


def test_remove_by_properties_dimension_checks(blobs3d):
    with pytest.raises(UserError, match="sphericity"):
        remove_by_properties(blobs3d, "circularity lt 0.5")
    with pytest.raises(UserError, match="3D"):
        remove_by_properties(blobs3d[0], "sphericity lt 0.5")
    kept, report = remove_by_properties(blobs3d, "area lt 2000")  # BiaPy's 'area' means volume in 3D
    assert report["removed"].sum() == (measure_labels(blobs3d, properties=["volume"])["volume"] < 2000).sum()
    assert "volume" in report.names

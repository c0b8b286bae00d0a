"""I/O round trips for every axes layout, dataset pairing, COCO conversion and bad inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile

from runner.errors import UserError
from runner.io import (
    find_pairs,
    find_splits,
    read_array,
    read_image,
    read_labels,
    staged_dir,
    write_labels,
    write_tiff,
)
from runner.io.coco import decode_rle, read_coco


def _expected_engine(data: np.ndarray, axes: str) -> np.ndarray:
    if "c" not in axes:
        data, axes = data[None], "c" + axes
    target = "czyx" if "z" in axes else "cyx"
    return np.transpose(data, [axes.index(a) for a in target])


@pytest.mark.parametrize(
    "axes,shape",
    [
        ("yx", (20, 30)),
        ("yxc", (20, 30, 3)),
        ("zyx", (5, 20, 30)),
        ("zyxc", (5, 20, 30, 2)),
        ("czyx", (2, 5, 20, 30)),
        ("cyx", (3, 20, 30)),
    ],
)
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_tiff_round_trip_every_layout(tmp_path, axes, shape, dtype):
    rng = np.random.default_rng(0)
    data = (rng.random(shape) * 200).astype(dtype)
    path = write_tiff(
        tmp_path / "img.tif", data, axes=axes, resolution=(2.0, 0.5, 0.5)[-sum(a in axes for a in "zyx") :]
    )
    image = read_image(path)
    assert image.axes == ("czyx" if "z" in axes else "cyx")
    np.testing.assert_array_equal(image.data, _expected_engine(data, axes).astype(np.float32))
    assert image.info.axes == "".join(a for a in "czyx" if a in axes)  # stored in OME order
    assert image.info.resolution[-1] == pytest.approx(0.5)
    assert image.data.dtype == np.float32


@pytest.mark.parametrize(
    "shape,axes", [((20, 30), "yx"), ((20, 30, 3), "yxc"), ((6, 20, 30), "zyx"), ((6, 20, 30, 2), "zyxc")]
)
def test_plain_tiff_axes_are_guessed(tmp_path, shape, axes):
    data = np.arange(np.prod(shape), dtype=np.uint16).reshape(shape)
    tifffile.imwrite(tmp_path / "plain.tif", data, photometric="rgb" if axes == "yxc" else "minisblack")
    raw, info = read_array(tmp_path / "plain.tif")
    assert info.axes == axes
    np.testing.assert_array_equal(raw, data)


def test_axes_override(tmp_path):
    data = np.random.default_rng(1).random((3, 20, 30)).astype(np.float32)
    tifffile.imwrite(tmp_path / "a.tif", data, photometric="minisblack")
    as_volume = read_image(tmp_path / "a.tif")
    as_channels = read_image(tmp_path / "a.tif", axes="cyx")
    assert as_volume.data.shape == (1, 3, 20, 30)
    assert as_channels.data.shape == (3, 20, 30)
    with pytest.raises(UserError, match="letters"):
        read_image(tmp_path / "a.tif", axes="yx")


def test_imagej_hyperstack_axes(tmp_path):
    data = np.zeros((4, 2, 16, 16), np.uint16)
    data[:, 1] = 7
    tifffile.imwrite(tmp_path / "ij.tif", data, imagej=True, metadata={"axes": "ZCYX", "spacing": 3.0})
    image = read_image(tmp_path / "ij.tif")
    assert image.data.shape == (2, 4, 16, 16)
    assert image.data[1].min() == 7 and image.data[0].max() == 0
    assert image.info.resolution[0] == pytest.approx(3.0)


def test_png_npy_and_zarr(tmp_path):
    import imageio.v3 as iio

    from runner.io.zarr_io import write_zarr

    rgb = (np.random.default_rng(2).random((12, 14, 3)) * 255).astype(np.uint8)
    iio.imwrite(tmp_path / "a.png", rgb)
    assert read_image(tmp_path / "a.png").data.shape == (3, 12, 14)
    np.save(tmp_path / "b.npy", rgb[..., 0])
    np.testing.assert_array_equal(read_image(tmp_path / "b.npy").data[0], rgb[..., 0])
    vol = np.random.default_rng(3).random((4, 10, 12)).astype(np.float32)
    write_zarr(tmp_path / "c.zarr", vol, axes="zyx", resolution=(2, 1, 1))
    image = read_image(tmp_path / "c.zarr")
    np.testing.assert_array_equal(image.data[0], vol)
    assert image.info.resolution == (2, 1, 1)


@pytest.mark.parametrize("dtype", [np.uint16, np.uint32, np.int32, np.float32])
def test_labels_round_trip(tmp_path, blobs3d, dtype):
    labels = blobs3d.astype(dtype)
    write_tiff(tmp_path / "l.tif", labels, axes="zyx")
    back = read_labels(tmp_path / "l.tif", spatial_shape=labels.shape)
    assert back.data.dtype == np.uint32
    np.testing.assert_array_equal(back.data, blobs3d)
    big = blobs3d.astype(np.uint32) * 100_000
    write_labels(tmp_path / "big.tif", big)
    assert tifffile.imread(tmp_path / "big.tif").dtype == np.uint32
    write_labels(tmp_path / "small.tif", blobs3d)
    assert tifffile.imread(tmp_path / "small.tif").dtype == np.uint16


def test_labels_with_class_channel(tmp_path, blobs2d):
    classes = np.where(blobs2d > 0, 1 + blobs2d % 3, 0).astype(np.uint16)
    stacked = np.stack([blobs2d.astype(np.uint16), classes], -1)  # (y, x, 2) as BiaPy stores it
    tifffile.imwrite(tmp_path / "m.tif", stacked)
    back = read_labels(tmp_path / "m.tif", spatial_shape=blobs2d.shape)
    np.testing.assert_array_equal(back.data, blobs2d)
    np.testing.assert_array_equal(back.classes, classes)


def test_bad_labels(tmp_path):
    tifffile.imwrite(tmp_path / "f.tif", np.full((8, 8), 0.5, np.float32))
    with pytest.raises(UserError, match="non-integer"):
        read_labels(tmp_path / "f.tif")
    tifffile.imwrite(tmp_path / "n.tif", np.full((8, 8), -1, np.int16))
    with pytest.raises(UserError, match="negative"):
        read_labels(tmp_path / "n.tif")
    tifffile.imwrite(tmp_path / "ok.tif", np.ones((8, 9), np.uint16))
    with pytest.raises(UserError, match="shape"):
        read_labels(tmp_path / "ok.tif", spatial_shape=(8, 8))
    tifffile.imwrite(tmp_path / "fi.tif", np.full((8, 8), 3.0, np.float32))
    assert read_labels(tmp_path / "fi.tif").data.max() == 3


def test_corrupt_and_missing_files(tmp_path):
    (tmp_path / "bad.tif").write_bytes(b"II*\x00garbage" * 3)
    with pytest.raises(UserError, match="bad.tif"):
        read_image(tmp_path / "bad.tif")
    with pytest.raises(UserError, match="not found"):
        read_image(tmp_path / "missing.tif")
    nan = np.ones((4, 4), np.float32)
    nan[1, 1] = np.nan
    tifffile.imwrite(tmp_path / "nan.tif", nan)
    with pytest.raises(UserError, match="NaN"):
        read_image(tmp_path / "nan.tif")


def _touch_pair(root, name_x, name_y):
    (root / "x").mkdir(parents=True, exist_ok=True)
    (root / "y").mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(root / "x" / name_x, np.zeros((4, 4), np.uint8))
    tifffile.imwrite(root / "y" / name_y, np.zeros((4, 4), np.uint16))


def test_pairing_natural_sort_and_mask_suffix(tmp_path):
    for i in (10, 2, 1):
        _touch_pair(tmp_path, f"img{i}.tif", f"img{i}_mask.tif")
    pairs = find_pairs(tmp_path)
    assert [p.name for p in pairs] == ["img1", "img2", "img10"]
    assert pairs[2].labels.name == "img10_mask.tif"


def test_pairing_lists_unpaired_files(tmp_path):
    _touch_pair(tmp_path, "a.tif", "a.tif")
    _touch_pair(tmp_path, "b.tif", "c.tif")
    with pytest.raises(UserError) as err:
        find_pairs(tmp_path)
    assert "b.tif" in str(err.value) and "c.tif" in str(err.value)


def test_empty_and_malformed_dataset_folders(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "y").mkdir()
    with pytest.raises(UserError, match="no images"):
        find_pairs(tmp_path)
    with pytest.raises(UserError, match="x/"):
        find_splits(tmp_path / "x")


def test_staged_dir_is_all_or_nothing(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(RuntimeError), staged_dir(out) as stage:
        (stage / "a.txt").write_text("partial")
        raise RuntimeError("boom")
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []
    with staged_dir(out) as stage:
        (stage / "sub").mkdir()
        (stage / "sub" / "b.txt").write_text("ok")
    assert (out / "sub" / "b.txt").read_text() == "ok"


def test_coco_polygons_rle_and_overlaps(tmp_path):
    pytest.importorskip("pycocotools")
    from pycocotools import mask as mask_utils

    h, w = 40, 50
    square = np.zeros((h, w), bool)
    square[5:15, 10:30] = True
    rle = mask_utils.encode(np.asfortranarray(square.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode()
    doc = {
        "images": [{"id": 7, "file_name": "im.png", "height": h, "width": w}],
        "annotations": [
            {"id": 1, "image_id": 7, "category_id": 2, "segmentation": rle},
            # 20x20 polygon overlapping the square's right part
            {"id": 2, "image_id": 7, "category_id": 3, "segmentation": [[25, 10, 45, 10, 45, 30, 25, 30]]},
        ],
        "categories": [{"id": 2, "name": "a"}, {"id": 3, "name": "b"}],
    }
    (tmp_path / "c.json").write_text(json.dumps(doc))
    (image,) = read_coco(tmp_path / "c.json")
    np.testing.assert_array_equal(image.masks[0], square)
    poly = image.masks[1]
    assert poly.sum() == 20 * 20 and poly[10:30, 25:45].all()
    stack = image.to_stack()
    assert stack.shape == (2, h, w) and ((stack > 0).sum(0) == 2).sum() == 5 * 5
    labels = image.to_labels()
    assert set(np.unique(labels)) == {0, 1, 2}
    assert (image.to_classes()[labels == 1] == 2).all()
    assert (
        decode_rle(mask_utils.encode(np.asfortranarray(poly.astype(np.uint8)))["counts"].decode(), h, w).sum()
        == 400
    )


def test_open_lazy_reads_blocks(tmp_path):
    from runner.io import open_lazy
    from runner.io.zarr_io import write_zarr

    vol = np.arange(6 * 40 * 50, dtype=np.uint16).reshape(6, 40, 50)
    write_tiff(tmp_path / "v.tif", vol, axes="zyx", compression=None)
    arr, info = open_lazy(tmp_path / "v.tif")
    assert info.axes == "zyx" and tuple(arr.shape) == vol.shape
    np.testing.assert_array_equal(arr[2:4, 10:20, 5:9], vol[2:4, 10:20, 5:9])
    write_zarr(tmp_path / "v.zarr", vol, axes="zyx", chunks=(2, 16, 16))
    arr, info = open_lazy(tmp_path / "v.zarr")
    assert info.axes == "zyx"
    np.testing.assert_array_equal(arr[1:5, :7, 30:], vol[1:5, :7, 30:])

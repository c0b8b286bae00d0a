"""COCO JSON instance annotations (polygons or RLE) to label images or overlapping-instance stacks."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from runner.errors import UserError


@dataclass
class CocoImage:
    """The instances annotated on one image of a COCO file."""

    file_name: str
    masks: np.ndarray
    """``(N, Y, X)`` bool, one mask per annotation (may overlap)."""
    categories: np.ndarray
    """``(N,)`` category id of each mask."""

    def to_labels(self) -> np.ndarray:
        """``(Y, X)`` uint32 label image; where masks overlap the smaller object stays on top."""
        labels = np.zeros(self.masks.shape[1:], np.uint32)
        areas = self.masks.reshape(len(self.masks), labels.size).sum(1)  # also for an image without objects
        for i in np.argsort(-areas, kind="stable"):  # large first, small painted last
            labels[self.masks[i]] = i + 1
        return labels

    def to_classes(self) -> np.ndarray:
        """``(Y, X)`` uint32 class image matching :meth:`to_labels`."""
        labels = self.to_labels()
        lut = np.concatenate([[0], self.categories]).astype(np.uint32)
        return lut[labels]

    def to_stack(self) -> np.ndarray:
        """``(N, Y, X)`` uint32 overlapping stack, plane ``i`` holds object ``i + 1``."""
        ids = np.arange(1, len(self.masks) + 1, dtype=np.uint32)[:, None, None]
        return self.masks.astype(np.uint32) * ids


def decode_rle(counts: list[int] | str, height: int, width: int) -> np.ndarray:
    """Decode a COCO run-length encoding (column-major runs starting with background) to a bool mask."""
    if isinstance(counts, str):
        counts = _decode_counts_string(counts)
    runs = np.asarray(counts, dtype=np.int64)
    if runs.ndim != 1 or (runs < 0).any() or runs.sum() != height * width:
        raise ValueError(f"RLE covers {runs.sum()} pixels, expected {height * width}")
    values = np.zeros(len(runs), bool)
    values[1::2] = True
    flat = np.repeat(values, runs)
    return flat.reshape(width, height).T


def _decode_counts_string(s: str) -> list[int]:
    """COCO's compressed RLE: 5 bits per character, continuation bit 0x20, sign bit 0x10, deltas after 2."""
    counts: list[int] = []
    p = 0
    while p < len(s):
        value, shift, more = 0, 0, True
        while more:
            c = ord(s[p]) - 48
            value |= (c & 0x1F) << shift
            more = bool(c & 0x20)
            p += 1
            shift += 5
            if not more and (c & 0x10):
                value |= -1 << shift
        if len(counts) > 2:
            value += counts[-2]
        counts.append(value)
    return counts


def rasterize_polygons(polygons: list[list[float]], height: int, width: int) -> np.ndarray:
    """Fill COCO polygons (``[x0, y0, x1, y1, ...]``, pixel ``(x, y)`` spanning ``[x, x+1)``) into a mask."""
    from skimage.draw import polygon as fill_polygon

    mask = np.zeros((height, width), bool)
    for poly in polygons:
        xy = np.asarray(poly, dtype=np.float64).reshape(-1, 2)
        if len(xy) < 3:
            continue
        rr, cc = fill_polygon(xy[:, 1] - 0.5, xy[:, 0] - 0.5, shape=(height, width))
        mask[rr, cc] ^= True  # even-odd rule: holes given as inner polygons stay empty
    return mask


def _image_size(im: dict, path: Path) -> tuple[int, int]:
    """``(height, width)`` of a COCO image entry: positive whole numbers, else a :class:`UserError`."""
    sizes = []
    for key in ("height", "width"):
        value = im.get(key)
        try:
            number = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            number = float("nan")
        if not number == number or number != int(number) or number < 1 or isinstance(value, bool):
            raise UserError(
                f"image {im.get('id')} ({im.get('file_name')}) has {key} {value!r}; "
                "expected a positive whole number of pixels",
                path=path,
                hint="fix the images entry of the COCO file",
            )
        sizes.append(int(number))
    return sizes[0], sizes[1]


def _load(path: Path) -> tuple[dict, list]:
    try:
        size = path.stat().st_size
        if size > 4 * 1024**3:
            raise UserError(f"the COCO file is {size} bytes; refusing to parse more than 4 GiB", path=path)
        doc = json.loads(path.read_text(encoding="utf-8"))
        images = {im["id"]: im for im in doc["images"]}
        annotations = doc.get("annotations", [])
        if not isinstance(annotations, list) or not all(isinstance(im, dict) for im in images.values()):
            raise TypeError("images and annotations must be lists of objects")
        if not all(isinstance(a, dict) for a in annotations):
            raise TypeError("annotations must be objects")
    except FileNotFoundError:
        raise UserError("file not found", path=path) from None
    except (UnicodeDecodeError, OSError) as exc:
        raise UserError(f"cannot read the COCO file ({exc})", path=path) from None
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
        raise UserError(
            f"not a COCO instances file ({type(exc).__name__}: {exc})",
            path=path,
            hint="expected keys images, annotations",
        ) from None
    return images, annotations


def read_coco(path: str | Path) -> list[CocoImage]:
    """All annotated images of a COCO instances file (``iscrowd`` annotations included as masks).

    Image sizes are checked (positive whole numbers) and the masks' memory is estimated against the
    budget of :mod:`runner.safety.budget` before any mask is allocated.
    """
    from runner.safety import check_shape

    path = Path(path)
    images, annotations = _load(path)
    per_image: dict[int, list[dict]] = {i: [] for i in images}
    for ann in annotations:
        if ann.get("image_id") not in per_image:
            raise UserError(
                f"annotation {ann.get('id')} refers to unknown image_id {ann.get('image_id')}", path=path
            )
        per_image[ann["image_id"]].append(ann)
    sizes = {image_id: _image_size(im, path) for image_id, im in images.items()}
    for image_id, (h, w) in sizes.items():  # masks (bool) + the label image (uint32) of the largest image
        check_shape(
            (len(per_image[image_id]) + 8, h, w),
            itemsize=1,
            what=f"the masks of COCO image {images[image_id].get('file_name')!r}",
            path=path,
        )
    return [_coco_image(im, sizes[image_id], per_image[image_id], path) for image_id, im in images.items()]


def _coco_image(im: dict, size: tuple[int, int], annotations: list[dict], path: Path) -> CocoImage:
    h, w = size
    masks, cats = [], []
    for ann in annotations:
        seg = ann.get("segmentation")
        try:
            if isinstance(seg, dict):
                rle_size = seg.get("size", [h, w])
                if [int(rle_size[0]), int(rle_size[1])] != [h, w]:
                    raise ValueError(f"RLE size {rle_size} differs from the image's {h}x{w}")
                mask = decode_rle(seg["counts"], h, w)
            elif isinstance(seg, list):
                mask = rasterize_polygons(seg, h, w)
            else:
                continue
            category = int(ann.get("category_id", 1))
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            raise UserError(f"annotation {ann.get('id')}: bad segmentation ({exc})", path=path) from None
        if mask.any():
            masks.append(mask)
            cats.append(category)
    stack = np.stack(masks) if masks else np.zeros((0, h, w), bool)
    name = im.get("file_name")
    if not isinstance(name, str) or not name:
        raise UserError(f"image {im.get('id')} has no file_name", path=path)
    return CocoImage(file_name=name, masks=stack, categories=np.asarray(cats, np.int64))

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
        areas = self.masks.reshape(len(self.masks), -1).sum(1)
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
    if runs.sum() != height * width:
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


def read_coco(path: str | Path) -> list[CocoImage]:
    """All annotated images of a COCO instances file (``iscrowd`` annotations included as masks)."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        images = {im["id"]: im for im in doc["images"]}
        annotations = doc.get("annotations", [])
    except FileNotFoundError:
        raise UserError("file not found", path=path) from None
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise UserError(
            f"not a COCO instances file ({exc})", path=path, hint="expected keys images, annotations"
        ) from exc
    per_image: dict[int, list[dict]] = {i: [] for i in images}
    for ann in annotations:
        if ann.get("image_id") not in per_image:
            raise UserError(
                f"annotation {ann.get('id')} refers to unknown image_id {ann.get('image_id')}", path=path
            )
        per_image[ann["image_id"]].append(ann)
    out = []
    for image_id, im in images.items():
        h, w = int(im["height"]), int(im["width"])
        masks, cats = [], []
        for ann in per_image[image_id]:
            seg = ann.get("segmentation")
            try:
                if isinstance(seg, dict):
                    size = seg.get("size", [h, w])
                    mask = decode_rle(seg["counts"], int(size[0]), int(size[1]))
                elif isinstance(seg, list):
                    mask = rasterize_polygons(seg, h, w)
                else:
                    continue
            except (ValueError, KeyError) as exc:
                raise UserError(f"annotation {ann.get('id')}: bad segmentation ({exc})", path=path) from exc
            if mask.any():
                masks.append(mask)
                cats.append(int(ann.get("category_id", 1)))
        stack = np.stack(masks) if masks else np.zeros((0, h, w), bool)
        out.append(CocoImage(file_name=im["file_name"], masks=stack, categories=np.asarray(cats, np.int64)))
    return out

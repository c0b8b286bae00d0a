"""Image, label and dataset I/O (TIFF/OME-TIFF, zarr, PNG, COCO JSON); every write is atomic."""

from runner.io.atomic import atomic_path, staged_dir, write_bytes_atomic, write_text_atomic
from runner.io.dataset import Pair, find_pairs, find_splits, list_images, pair_files
from runner.io.images import (
    IMAGE_SUFFIXES,
    Image,
    ImageInfo,
    Labels,
    as_label_array,
    gray_if_lossless,
    natural_key,
    open_lazy,
    read_array,
    read_image,
    read_labels,
    stem,
    write_image,
    write_labels,
    write_tiff,
)

__all__ = [
    "gray_if_lossless",
    "IMAGE_SUFFIXES",
    "Image",
    "ImageInfo",
    "Labels",
    "Pair",
    "as_label_array",
    "atomic_path",
    "find_pairs",
    "find_splits",
    "list_images",
    "natural_key",
    "open_lazy",
    "pair_files",
    "read_array",
    "read_image",
    "read_labels",
    "staged_dir",
    "stem",
    "write_bytes_atomic",
    "write_image",
    "write_labels",
    "write_text_atomic",
    "write_tiff",
]

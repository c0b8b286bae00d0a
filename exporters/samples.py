"""The run's validation data, and the test/sample tensors cut from a real validation image.

The package's test input is a crop of a validation image (the one holding the most objects in a window of
a valid size; reflection-padded when the image is smaller than the network's minimum), stored as ``(1, C,
(Z,) Y, X)`` float32 ``.npy``; the test output is what the trained network gives for it after the rdf's
preprocessing. Sample tensors are the same arrays as TIFF for people to look at.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from runner.contracts import RunMeta
from runner.errors import UserError

TEST_CAP = {2: 256, 3: 64}
"""Largest test-tensor side per dimensionality; the network's minimum size wins when larger (e.g. 120 in Y/X
for the 3D nuclei model, whose halo is 56). 64 in 3D cut that package's test and sample tensors by a third."""


@dataclass(frozen=True)
class RunData:
    """Validation (image, labels) pairs of a run, and where they came from."""

    pairs: list
    """:class:`runner.io.Pair` records, in name order."""
    source: str
    """Folder the pairs were read from."""
    role: str
    """``validation``, or ``training`` when the run had no validation images."""


def _relocate(path: str, old_root: str | None, new_root: Path | None) -> Path:
    p = Path(path)
    if new_root is None:
        return p
    if old_root:
        try:
            return new_root / p.relative_to(old_root)
        except ValueError:
            pass
    return new_root / p.name


def run_data(meta: RunMeta, *, data_dir: str | Path | None = None, where: Path | None = None) -> RunData:
    """The validation pairs of a trained run (its ``meta.data``), optionally from a moved data folder.

    Parameters
    ----------
    meta : checkpoint metadata (``LoadedRun.meta``).
    data_dir : where the run's dataset folder lives now (default: where it was during training).
    where : the checkpoint, named in error messages.
    """
    from runner.io import find_pairs

    info = meta.data
    new_root = Path(data_dir) if data_dir is not None else None
    old_root = info.data_dir
    names = list(info.val_images)
    role = "validation"
    val = str(info.val or "")
    if names and val and Path(val).name and " of " not in val:
        folder = _relocate(val, old_root, new_root)
    else:
        folder = _relocate(str(info.train or old_root or ""), old_root, new_root)
        if not names:
            names, role = list(info.train_images), "training"
    if not names:
        raise UserError("the checkpoint names no training or validation images", path=where)
    if not folder.is_dir():
        raise UserError(
            f"the run's {role} data is not found at {folder}",
            path=where,
            hint="pass --data with the dataset folder the run was trained on",
        )
    pairs = [p for p in find_pairs(folder) if p.name in set(names)]
    missing = sorted(set(names) - {p.name for p in pairs})
    if missing:
        raise UserError(
            f"{len(missing)} {role} image(s) of the run are missing from {folder} (e.g. {missing[0]})",
            path=where,
            hint="pass --data with the dataset folder the run was trained on",
        )
    return RunData(pairs=sorted(pairs, key=lambda p: p.name), source=str(folder), role=role)


# ------------------------------------------------------------------------------------------- test tensors


@dataclass
class TestSample:
    """The crop packaged as test tensor."""

    __test__ = False  # not a pytest class

    name: str
    """Image it was cut from."""
    image: np.ndarray
    """``(C, (Z,) Y, X)`` float32 raw crop (what the package's test input holds, without the batch axis)."""
    labels: np.ndarray
    """``(Z,) Y, X`` ground truth of the crop."""
    origin: tuple[int, ...]
    padded: tuple[int, ...]
    """Pixels of reflection padding added per axis (0 when the image was large enough)."""
    output: np.ndarray | None = None
    """``(K, (Z,) Y, X)`` network output for the crop (after the rdf preprocessing)."""
    files: dict[str, Path] = field(default_factory=dict)


def test_shape(image_shape: tuple[int, ...], rule_min, rule_step, *, cap: int) -> tuple[int, ...]:
    """Largest valid size ``min + n*step`` per axis within the image (and ``cap``); at least ``min``."""
    out = []
    for n, m, s in zip(image_shape, rule_min, rule_step, strict=True):
        limit = min(n, max(cap, m))
        k = max(0, (limit - m) // s)
        out.append(m + k * s)
    return tuple(out)


def _best_window(labels: np.ndarray, shape: tuple[int, ...]) -> tuple[int, ...]:
    """Origin of the window of ``shape`` (clipped to the image) holding the most distinct objects."""
    candidates = []
    for n, w in zip(labels.shape, shape, strict=True):
        span = max(0, n - w)
        candidates.append(sorted({0, span // 2, span}))
    best, best_count = tuple(c[0] for c in candidates), -1
    for origin in np.array(np.meshgrid(*candidates, indexing="ij")).reshape(len(shape), -1).T:
        region = tuple(slice(int(o), int(o) + w) for o, w in zip(origin, shape, strict=True))
        count = len(np.unique(labels[region]))
        if count > best_count:
            best, best_count = tuple(int(o) for o in origin), count
    return best


def cut_test_sample(pairs: list, rule_min, rule_step, *, ndim: int, axes: str | None = None) -> TestSample:
    """Read the validation images and crop the one with the most objects to a valid test shape."""
    from runner.io import read_image, read_labels

    best = None
    for pair in pairs[:8]:  # enough candidates; reading every image of a large split is wasted time
        image = read_image(pair.image, axes=axes)
        labels = read_labels(pair.labels, spatial_shape=image.data.shape[1:]).data
        shape = test_shape(labels.shape, rule_min, rule_step, cap=TEST_CAP[ndim])
        origin = _best_window(labels, shape)
        region = tuple(slice(o, o + w) for o, w in zip(origin, shape, strict=True))
        crop_labels = labels[region]
        count = len(np.unique(crop_labels)) - (1 if (crop_labels == 0).any() else 0)
        if best is None or count > best[0]:
            best = (count, pair.name, image.data[(slice(None), *region)], crop_labels, origin, shape)
    if best is None:
        raise UserError("no image pairs to cut a test sample from", hint="check the run's validation data")
    _, name, img, lab, origin, shape = best
    pad = [(0, max(0, w - n)) for n, w in zip(lab.shape, shape, strict=True)]
    if any(p[1] for p in pad):
        img = np.pad(img, [(0, 0), *pad], mode="symmetric")
        lab = np.pad(lab, pad, mode="constant")
    return TestSample(
        name=name,
        image=np.ascontiguousarray(img, dtype=np.float32),
        labels=np.ascontiguousarray(lab),
        origin=origin,
        padded=tuple(p[1] for p in pad),
    )


def write_test_tensors(sample: TestSample, folder: Path) -> dict[str, Path]:
    """Write ``test_{input,output}.npy`` (with batch axis) and ``sample_{input,output}.tif``."""
    import tifffile

    if sample.output is None:
        raise ValueError("compute sample.output first")
    ndim = sample.labels.ndim
    files = {
        "test_input": folder / "test_input.npy",
        "test_output": folder / "test_output.npy",
        "sample_input": folder / "sample_input.tif",
        "sample_output": folder / "sample_output.tif",
    }
    np.save(files["test_input"], sample.image[None].astype(np.float32))
    np.save(files["test_output"], sample.output[None].astype(np.float32))
    spatial = "ZYX"[-ndim:]
    img = sample.image[0] if sample.image.shape[0] == 1 else sample.image
    tifffile.imwrite(
        files["sample_input"],
        img,
        photometric="minisblack",
        metadata={"axes": spatial if img.ndim == ndim else "C" + spatial},
    )
    tifffile.imwrite(
        files["sample_output"],
        sample.output.astype(np.float32),
        photometric="minisblack",
        metadata={"axes": "C" + spatial},
    )
    sample.files = files
    return files

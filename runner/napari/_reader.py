"""napari reader: a ``runner predict`` results folder, or an OME-Zarr image with its ``labels/``.

A results folder gives, per image, the input image (when ``run_config.json`` points at it), the instances as
a labels layer and the raw outputs (``probabilities/``) one layer per channel; the first image's layers are
visible, the others hidden. An OME-Zarr gives its image (all resolution levels, lazily) and each label image.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

LayerData = tuple[Any, dict[str, Any], str]


def _is_results(path: Path) -> bool:
    return path.is_dir() and ((path / "instances").is_dir() or (path / "probabilities").is_dir())


def _ome_attrs(path: Path) -> dict[str, Any] | None:
    """The NGFF attributes of a zarr group (0.4: top level, 0.5: under ``ome``), None for anything else."""
    if not path.is_dir() or not any((path / f).exists() for f in (".zattrs", "zarr.json")):
        return None
    import zarr

    try:
        attrs = _ngff(zarr.open_group(str(path), mode="r"))
    except Exception:  # not a group (an array), or not zarr at all: another reader's business
        return None
    return attrs if "multiscales" in attrs else None


def _ngff(group: Any) -> dict[str, Any]:
    attrs: dict[str, Any] = dict(group.attrs)
    ome = attrs.get("ome")
    return dict(ome) if isinstance(ome, dict) else attrs


def get_reader(path: str | list[str]) -> Callable[[str], list[LayerData]] | None:
    """npe2 reader hook: a reader for results folders and OME-Zarr groups, None for anything else."""
    if isinstance(path, list):
        return None
    p = Path(path)
    if _is_results(p):
        return read_results
    if _ome_attrs(p) is not None:
        return read_ome_zarr
    return None


def _channel_names(targets: str | None, n: int) -> list[str]:
    from runner.targets.codes import split_code

    try:
        letters = split_code(targets) if targets else []
    except Exception:  # an unknown code: number the channels
        letters = []
    return letters if len(letters) == n else [f"channel {c}" for c in range(n)]


def read_results(path: str) -> list[LayerData]:
    """Layers of a results folder: ``<name>`` image, ``<name> instances``, ``<name> <channel>``."""
    from runner.io import read_image, read_labels
    from runner.report.collect import collect_results

    folder = Path(path)
    results = collect_results(folder)
    targets = ((results.run_config or {}).get("package") or {}).get("targets")
    layers: list[LayerData] = []
    for i, entry in enumerate(results.images):
        visible = i == 0
        if entry.image is not None:
            image = read_image(entry.image)
            layers.append(
                (image.data, {"name": entry.name, "channel_axis": 0, "visible": visible}, "image")
                if image.data.shape[0] > 1
                else (image.data[0], {"name": entry.name, "visible": visible}, "image")
            )
        for probs in entry.probabilities:
            data = read_image(probs).data
            output = "" if probs.parent.name == "probabilities" else f" {probs.parent.name}"
            names = [f"{entry.name}{output} {c}" for c in _channel_names(targets, data.shape[0])]
            meta = {
                "name": names,
                "channel_axis": 0,
                "visible": visible and entry.instances is None,
                "colormap": "magma",
                "blending": "additive",
            }
            layers.append((data, meta, "image"))
        if entry.instances is not None:
            labels = read_labels(entry.instances).data
            layers.append((labels, {"name": f"{entry.name} instances", "visible": visible}, "labels"))
    return layers


def _level_paths(attrs: dict[str, Any]) -> tuple[list[str], list[str]]:
    multiscale = attrs["multiscales"][0]
    axes = [a["name"] if isinstance(a, dict) else str(a) for a in multiscale.get("axes", [])]
    return [d["path"] for d in multiscale["datasets"]], axes


def _multiscale(group_path: Path, attrs: dict[str, Any]) -> tuple[list[Any], list[str]]:
    import dask.array as da
    import zarr

    paths, axes = _level_paths(attrs)
    group = zarr.open_group(str(group_path), mode="r")
    return [da.from_zarr(group[p]) for p in paths], axes


def read_ome_zarr(path: str) -> list[LayerData]:
    """The image of an OME-Zarr group (channels as separate layers) and each of its ``labels/``."""
    import zarr

    root = Path(path)
    attrs = _ome_attrs(root)
    assert attrs is not None, "get_reader only hands over OME-Zarr groups"
    levels, axes = _multiscale(root, attrs)
    name = root.name.removesuffix(".zarr")
    meta: dict[str, Any] = {"name": name, "multiscale": len(levels) > 1}
    if "c" in axes:
        meta["channel_axis"] = axes.index("c")
        n = levels[0].shape[axes.index("c")]
        labels = [str(c.get("label", "")) for c in (attrs.get("omero") or {}).get("channels", [])]
        meta["name"] = [
            f"{name} {lab}" if len(labels) == n and lab else f"{name} [{i}]"
            for i, lab in enumerate(labels or [""] * n)
        ]
    layers: list[LayerData] = [(levels if len(levels) > 1 else levels[0], meta, "image")]
    labels_dir = root / "labels"
    if labels_dir.is_dir():
        names: list[str] = [
            str(n) for n in _ngff(zarr.open_group(str(labels_dir), mode="r")).get("labels", [])
        ]
        for label_name in names:
            label_attrs = _ome_attrs(labels_dir / label_name)
            if label_attrs is None:
                continue
            label_levels, label_axes = _multiscale(labels_dir / label_name, label_attrs)
            squeeze = tuple(
                i for i, a in enumerate(label_axes) if a in ("c", "t") and label_levels[0].shape[i] == 1
            )
            data = [lv.squeeze(axis=squeeze) if squeeze else lv for lv in label_levels]
            layers.append(
                (
                    data if len(data) > 1 else data[0],
                    {"name": f"{name} {label_name}", "multiscale": len(data) > 1},
                    "labels",
                )
            )
    return layers

"""``runner targets`` as a library call: :func:`write_targets` turns a dataset's instance labels into target
channel TIFFs (plus loss weights and preview PNGs), mirroring its splits, and describes them in
``targets.json``."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from runner.io import Pair
from runner.targets.codes import ChannelSpec, TargetCode, TargetOptions
from runner.targets.gradient_anomaly import GradientAnomalyOptions


@dataclass
class TargetsWritten:
    """What :func:`write_targets` wrote."""

    out: Path
    n_images: int
    channels: list[str] = field(default_factory=list)
    """Channel names, in order."""


@dataclass(frozen=True)
class _Job:
    target: TargetCode
    options: TargetOptions
    specs: list[ChannelSpec]
    ga: GradientAnomalyOptions | None
    overlapping: bool
    axes: str | None
    preview: bool


def write_targets(
    data_dir: str | Path,
    out: str | Path,
    *,
    code: str = "BCD",
    options: TargetOptions | None = None,
    gradient_anomaly: GradientAnomalyOptions | None = None,
    overlapping: bool = False,
    axes: str | None = None,
    preview: bool = True,
    progress: bool = True,
) -> TargetsWritten:
    """Write the ``code`` target channels of every labelled image of ``data_dir`` under ``out``.

    Parameters
    ----------
    data_dir : dataset folder (``<split>/x`` + ``<split>/y``) or one split with ``x/`` and ``y/``.
    out : new folder; each split becomes a sub-folder with ``<name>.tif`` ``(K, (Z,) Y, X)`` float32 targets,
        ``weights/`` (with ``gradient_anomaly``) and ``preview/`` PNGs; written in a staging folder and
        renamed into place, so a failure leaves nothing behind.
    gradient_anomaly : also write GAInS loss weights with these options.
    overlapping : label files are overlapping stacks ``(N, (Z,) Y, X)``, one object per plane.
    progress : show a progress bar on stderr.
    """
    from tqdm import tqdm

    from runner.io import find_pairs, find_splits, staged_dir, write_text_atomic
    from runner.safety import check_output_dir
    from runner.targets.codes import channel_specs, get_code

    out = Path(out)
    options = options or TargetOptions()
    job = _Job(
        get_code(code),
        options,
        channel_specs(code, options),
        gradient_anomaly,
        overlapping,
        axes,
        preview,
    )
    check_output_dir(out)
    splits = {name: find_pairs(path) for name, path in find_splits(data_dir).items()}
    total = sum(len(p) for p in splits.values())
    with staged_dir(out) as stage:
        with tqdm(total=total, desc=f"targets {code}", unit="img", disable=not progress) as bar:
            for split, pairs in splits.items():
                folder = stage / split if split else stage
                folder.mkdir(parents=True, exist_ok=True)
                for pair in pairs:
                    _write_one(pair, folder, job)
                    bar.update(1)
        meta = {
            "code": code,
            "channels": [
                {"index": i, "name": s.name, "kind": s.kind, "description": s.description}
                for i, s in enumerate(job.specs)
            ],
            "options": options.model_dump(mode="json"),
            "gradient_anomaly": gradient_anomaly.model_dump() if gradient_anomaly else None,
            "n_images": total,
        }
        write_text_atomic(stage / "targets.json", json.dumps(meta, indent=2))
    return TargetsWritten(out=out, n_images=total, channels=[s.name for s in job.specs])


def _write_one(pair: Pair, folder: Path, job: _Job) -> None:
    """Targets, weights and preview of one image."""
    from runner.io import read_image, write_tiff
    from runner.safety import check_shape
    from runner.targets.io_helpers import read_target_labels, write_preview

    image = read_image(pair.image, axes=job.axes)
    check_shape(
        (len(job.specs) + 2, *image.data.shape[1:]),
        what=f"the {len(job.specs)} target channels of the image",
        path=pair.image,
    )
    labels = read_target_labels(pair.labels, image, overlapping=job.overlapping)
    channels = job.target.build(labels, job.options, overlapping=job.overlapping)
    axes_out = "czyx" if channels.ndim == 4 else "cyx"
    write_tiff(folder / f"{pair.name}.tif", channels, axes=axes_out, resolution=job.options.resolution)
    weights = None
    if job.ga is not None:
        from runner.targets.gradient_anomaly import gradient_anomaly_weights

        weights = gradient_anomaly_weights(labels, job.ga, overlapping=job.overlapping)
        (folder / "weights").mkdir(exist_ok=True)
        write_tiff(folder / "weights" / f"{pair.name}.tif", weights, axes="zyx"[-weights.ndim :])
    if job.preview:
        (folder / "preview").mkdir(exist_ok=True)
        write_preview(
            folder / "preview" / f"{pair.name}.png",
            image.data,
            labels,
            channels,
            job.specs,
            weights=weights,
            overlapping=job.overlapping,
        )

"""Voxel-size-aware prediction: an input brought to the package's voxel size, the labels back to its grid.

A package trained at a known voxel size records it as ``config.runner.voxel_size`` (micrometres, one value
per spatial axis ``(z,) y, x``, from the recipe's ``data.voxel_size``). When an input's voxel size
(``runner predict --resolution``, else the file's OME/ImageJ metadata) differs from it by more than
:data:`TOLERANCE`, the image is resampled (linear) to the package's voxel size, predicted and post-processed
there, and the instance labels are mapped back to the input grid by nearest neighbour, to the input's exact
shape. Probability maps are resampled back linearly.

    >>> plan = plan_rescale((0.5, 0.2, 0.2), (0.284, 0.127, 0.127), (40, 100, 100), where="vol.tif")
    >>> small = to_package_grid(image, plan)                 # (C, 70, 157, 157)
    >>> labels = labels_to_input_grid(labels_small, plan)    # (40, 100, 100)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from runner.errors import UserError

if TYPE_CHECKING:
    from runner.contracts import RunnerConfig

TOLERANCE = 0.02
"""Relative difference of voxel sizes below which no resampling is done."""
MAX_FACTOR = 8.0
"""Largest zoom (or 1/zoom) per axis; beyond it the sizes are most likely in other units."""


@dataclass(frozen=True)
class Rescale:
    """How an input is brought to the package's grid."""

    input_voxel: tuple[float, ...]
    package_voxel: tuple[float, ...]
    input_shape: tuple[int, ...]
    """Spatial shape ``(Z,) Y, X`` of the input."""
    package_shape: tuple[int, ...]
    """Spatial shape of the input resampled to the package's voxel size."""


def package_voxel_size(runner_config: RunnerConfig | None) -> tuple[float, ...] | None:
    """``config.runner.voxel_size`` of a package, or None when it records none."""
    value = runner_config.voxel_size if runner_config is not None else None
    if not value:
        return None
    return tuple(float(v) for v in value)


def check_resolution(values: tuple[float, ...] | list[float], ndim: int, *, where: Path | str | None) -> None:
    """Fail with a one-line error unless ``values`` has ``ndim`` positive finite numbers."""
    if len(values) != ndim:
        raise UserError(
            f"--resolution has {len(values)} values but the image is {ndim}D",
            path=where,
            hint=f"give {ndim} voxel sizes ({'z,' if ndim == 3 else ''}y,x) in micrometres",
        )
    if not all(np.isfinite(v) and v > 0 for v in values):
        raise UserError(
            f"--resolution values must be positive, got {','.join(f'{v:g}' for v in values)}",
            path=where,
            hint="give voxel sizes in micrometres, e.g. 0.5,0.2,0.2",
        )


def plan_rescale(
    input_voxel: tuple[float, ...] | None,
    package_voxel: tuple[float, ...] | None,
    shape: tuple[int, ...],
    *,
    where: Path | str | None,
    explicit: bool = False,
) -> Rescale | None:
    """The resampling an input of spatial ``shape`` and voxel size ``input_voxel`` needs, or None.

    Parameters
    ----------
    input_voxel : the input's voxel size (None: unknown, no rescaling).
    package_voxel : the package's ``config.runner.voxel_size`` (None: the package cannot rescale).
    shape : spatial shape ``(Z,) Y, X`` of the input.
    explicit : the size was given with ``--resolution`` (then a package without a voxel size is an error;
        a size from file metadata is silently ignored for such a package).
    """
    if input_voxel is None:
        return None
    if package_voxel is None:
        if explicit:
            raise UserError(
                "--resolution given, but the package cannot rescale: it records no voxel size "
                "(config.runner.voxel_size)",
                path=where,
                hint="drop --resolution, or resample the images to the model's pixel size yourself",
            )
        return None
    check_resolution(tuple(input_voxel), len(shape), where=where)
    if len(package_voxel) != len(shape):
        raise UserError(
            f"the package's voxel size has {len(package_voxel)} values but the image is {len(shape)}D",
            path=where,
            hint="give an image with as many spatial axes as the model",
        )
    if all(abs(i / p - 1) <= TOLERANCE for i, p in zip(input_voxel, package_voxel, strict=True)):
        return None
    factors = [i / p for i, p in zip(input_voxel, package_voxel, strict=True)]
    if any(f > MAX_FACTOR or f < 1 / MAX_FACTOR for f in factors):
        given = ",".join(f"{v:g}" for v in input_voxel)
        raise UserError(
            f"voxel size {given} differs from the package's "
            f"{','.join(f'{v:g}' for v in package_voxel)} um by more than {MAX_FACTOR:g}x",
            path=where,
            hint="check the units (the package's are micrometres) and pass --resolution in um",
        )
    new_shape = tuple(max(1, int(round(n * f))) for n, f in zip(shape, factors, strict=True))
    return Rescale(tuple(input_voxel), tuple(package_voxel), tuple(shape), new_shape)


def _zoom_to(array: np.ndarray, shape: tuple[int, ...], order: int) -> np.ndarray:
    """Resample the trailing axes of ``array`` ``(C, *S)`` to ``shape`` (pixel centres aligned)."""
    from scipy import ndimage as ndi

    spatial = array.shape[1:]
    factors = [n / s for n, s in zip(shape, spatial, strict=True)]
    out = np.empty((array.shape[0], *shape), np.float32)
    for c in range(array.shape[0]):
        ndi.zoom(
            np.asarray(array[c], np.float32),
            factors,
            output=out[c],
            order=order,
            mode="nearest",
            grid_mode=True,
        )
    return out


def to_package_grid(image: np.ndarray, plan: Rescale) -> np.ndarray:
    """``(C, *S)`` image resampled (linear) to the package's voxel size: ``(C, *plan.package_shape)``."""
    return _zoom_to(image, plan.package_shape, order=1)


def outputs_to_input_grid(output: np.ndarray, plan: Rescale) -> np.ndarray:
    """``(C, *package_shape)`` network output resampled (linear) back to ``(C, *plan.input_shape)``."""
    if tuple(output.shape[1:]) != plan.package_shape:
        return output
    return _zoom_to(output, plan.input_shape, order=1)


def labels_to_input_grid(labels: np.ndarray, plan: Rescale) -> np.ndarray:
    """Instance labels ``(*package_shape)`` (or ``(N, *package_shape)``) mapped by nearest neighbour to the
    input grid: ``(*plan.input_shape)``, ids unchanged, every input voxel takes the label of the package
    voxel its centre falls in."""
    spatial = labels.shape[-len(plan.input_shape) :]
    index = []
    for n_in, n_pkg in zip(plan.input_shape, spatial, strict=True):
        centres = (np.arange(n_in) + 0.5) * (n_pkg / n_in)
        index.append(np.clip(np.floor(centres).astype(np.intp), 0, n_pkg - 1))
    lead = labels.ndim - len(plan.input_shape)
    grid = np.ix_(*index)
    return labels[(slice(None),) * lead + grid] if lead else labels[grid]


def check_rescalable(
    package_voxel: tuple[float, ...] | None, given: list[float] | None, *, where: Path | str | None
) -> None:
    """Checks of an explicit ``--resolution`` that need no image: positive values, a package that can
    rescale, and as many values as the package's voxel size."""
    if not given:
        return
    if not all(np.isfinite(v) and v > 0 for v in given):
        raise UserError(
            f"--resolution values must be positive, got {','.join(f'{v:g}' for v in given)}",
            hint="give voxel sizes in micrometres, e.g. 0.5,0.2,0.2",
        )
    if package_voxel is None:
        plan_rescale(tuple(given), None, tuple(1 for _ in given), where=where, explicit=True)
    elif len(given) != len(package_voxel):
        raise UserError(
            f"--resolution has {len(given)} values but the model is {len(package_voxel)}D",
            path=where,
            hint=f"give {len(package_voxel)} voxel sizes in micrometres, e.g. the package's "
            f"{','.join(f'{v:g}' for v in package_voxel)}",
        )
    else:
        plan_rescale(tuple(given), package_voxel, tuple(10 for _ in given), where=where, explicit=True)


def input_plan(
    package_voxel: tuple[float, ...] | None,
    given: list[float] | None,
    file_voxel: tuple[float, ...] | None,
    shape: tuple[int, ...],
    *,
    where: Path | str | None,
) -> Rescale | None:
    """The rescaling of one input: ``--resolution`` when given, else the file's voxel size (an uncalibrated
    file, all sizes 1, counts as unknown), compared with the package's."""
    if given:
        return plan_rescale(tuple(given), package_voxel, shape, where=where, explicit=True)
    if file_voxel is None or all(v == 1.0 for v in file_voxel):
        return None
    return plan_rescale(tuple(file_voxel), package_voxel, shape, where=where)

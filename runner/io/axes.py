"""Axes strings: parsing, validation and moving arrays to the engine layout.

Inside the engine an image is ``cyx`` or ``czyx`` and a label image ``yx`` or ``zyx``. On disk we accept any
order of the letters ``t z c y x`` (``s``, samples, is read as ``c``; ``q``/``i`` unknown axes of size one are
dropped). A time axis of size one is dropped; longer time series are refused (one timepoint per file).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from runner.errors import UserError

KNOWN = set("tzcyx")


def normalize_axes(axes: str) -> str:
    """Lower-case, map ``s`` to ``c`` and check the letters."""
    axes = axes.strip().lower().replace("s", "c")
    bad = set(axes) - KNOWN - {"q", "i"}
    if bad:
        raise UserError(
            f"unknown axis letter(s) {''.join(sorted(bad))!r} in axes {axes!r}; use letters of 'tzcyx'"
        )
    if len(set(axes)) != len(axes):
        raise UserError(f"axes {axes!r} names an axis twice")
    if "y" not in axes or "x" not in axes:
        raise UserError(f"axes {axes!r} must contain 'y' and 'x'")
    return axes


def guess_axes(shape: tuple[int, ...]) -> str | None:
    """Guess the axes of an array without metadata; ``None`` when it cannot be told apart.

    2D is ``yx``; 3D is ``yxc`` when the last axis is small (<= 4) and the others are not, else ``zyx``;
    4D is ``zyxc`` when the last axis is small, ``czyx`` when the first one is and the second is not.
    """
    nd = len(shape)
    if nd == 2:
        return "yx"
    if nd == 3:
        if shape[-1] <= 4 and min(shape[:2]) > 4:
            return "yxc"
        return "zyx"
    if nd == 4:
        if shape[-1] <= 4 and min(shape[1:3]) > 4:
            return "zyxc"
        if shape[0] <= 4 and shape[1] > 4:
            return "czyx"
    return None


def to_engine_image(
    data: np.ndarray, axes: str, *, where: str | Path | None = None
) -> tuple[np.ndarray, str]:
    """Transpose ``data`` with ``axes`` to ``cyx`` or ``czyx`` (adding a channel axis of size one)."""
    axes = normalize_axes(axes)
    if len(axes) != data.ndim:
        raise UserError(
            f"axes {axes!r} have {len(axes)} letters but the image has {data.ndim} dimensions {data.shape}",
            path=where,
            hint="pass --axes with one letter per dimension",
        )
    data, axes = _drop_singletons(data, axes, where)
    if "c" not in axes:
        data = data[np.newaxis]
        axes = "c" + axes
    target = "czyx" if "z" in axes else "cyx"
    return np.transpose(data, [axes.index(a) for a in target]), target


def to_engine_labels(
    data: np.ndarray, axes: str, *, where: str | Path | None = None
) -> tuple[np.ndarray, str]:
    """Transpose ``data`` to ``yx`` or ``zyx``; a channel axis must have size one."""
    data, axes = _drop_singletons(data, normalize_axes(axes), where)
    if "c" in axes:
        if data.shape[axes.index("c")] != 1:
            raise UserError(
                f"label image has a channel axis of size {data.shape[axes.index('c')]}", path=where
            )
        data = np.take(data, 0, axis=axes.index("c"))
        axes = axes.replace("c", "")
    target = "zyx" if "z" in axes else "yx"
    return np.transpose(data, [axes.index(a) for a in target]), target


def _drop_singletons(data: np.ndarray, axes: str, where: str | Path | None) -> tuple[np.ndarray, str]:
    for letter in "qit":
        if letter in axes:
            i = axes.index(letter)
            if data.shape[i] != 1:
                what = "time points" if letter == "t" else "planes along an unknown axis"
                raise UserError(
                    f"image has {data.shape[i]} {what} (shape {data.shape}, axes {axes!r})",
                    path=where,
                    hint="save one image per file, or pass --axes to say what the axis is",
                )
            data = np.take(data, 0, axis=i)
            axes = axes[:i] + axes[i + 1 :]
    return data, axes

"""The package cover: input | output channels | instances, as one 2:1 PNG (bioimage.io's preferred ratio).

The input takes the left half; the right half holds up to three output channels and the instances (outlines
over the input) in a 2 x 2 grid. 3D crops show their middle z slice.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_cover(
    path: Path,
    image: np.ndarray,
    channels: np.ndarray,
    channel_names: list[str],
    instances: np.ndarray,
    *,
    title: str | None = None,
) -> Path:
    """Write the cover PNG.

    Parameters
    ----------
    path : output file (``cover.png``).
    image : (C, (Z,) Y, X) ndarray
        Raw input crop (the first channel is shown).
    channels : (K, (Z,) Y, X) ndarray
        Network outputs for the crop.
    channel_names : names of the K channels.
    instances : ((Z,) Y, X) ndarray of uint32
        Instances from the post-processor.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from runner.io.atomic import atomic_path
    from runner.viz import display_slice, overlay_outlines, stretch

    raw = display_slice(image[0], axis_z=0) if image.ndim == 4 else image[0]
    labels = display_slice(instances, axis_z=0) if instances.ndim == 3 else instances
    fig = plt.figure(figsize=(10, 5), dpi=100)
    grid = fig.add_gridspec(2, 4, wspace=0.04, hspace=0.12, left=0.01, right=0.99, top=0.93, bottom=0.01)
    ax = fig.add_subplot(grid[:, :2])
    ax.imshow(stretch(raw), cmap="gray", interpolation="nearest")
    ax.set_title("input" if title is None else title, fontsize=10)
    cells = [grid[0, 2], grid[0, 3], grid[1, 2]]
    for k, cell in enumerate(cells[: min(3, channels.shape[0])]):
        ch = display_slice(channels[k], axis_z=0) if channels.ndim == 4 else channels[k]
        a = fig.add_subplot(cell)
        a.imshow(ch, cmap="magma", interpolation="nearest")
        a.set_title(f"output {channel_names[k]}", fontsize=9)
    a = fig.add_subplot(grid[1, 3])
    a.imshow(overlay_outlines(raw, labels), interpolation="nearest")
    a.set_title(f"instances ({len(np.unique(labels[labels > 0]))})", fontsize=9)
    for axis in fig.axes:
        axis.axis("off")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return path

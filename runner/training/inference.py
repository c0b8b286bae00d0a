"""Whole-image prediction with a trained network: reflection padding to a valid size, or tiles with a halo.

These helpers serve validation during training and quick use of a run from Python (see
:func:`runner.training.load_run`); ``runner predict`` runs exported packages through ``runner.inference``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import numpy as np
import torch

from runner.models import SizeRule

_TensorFn = Callable[[torch.Tensor], torch.Tensor]
"""``logits(x)`` and ``head.activate(y)`` of the :mod:`runner.models` networks (torch types them loosely)."""


def _pad_to(image: np.ndarray, shape: tuple[int, ...]) -> tuple[np.ndarray, tuple[slice, ...]]:
    """Reflect-pad ``(C, *spatial)`` to ``shape`` (split evenly); returns the array and the crop back."""
    pads, crop = [(0, 0)], [slice(None)]
    for s, n in zip(image.shape[1:], shape, strict=True):
        before = (n - s) // 2
        pads.append((before, n - s - before))
        crop.append(slice(before, before + s))
    if any(b or a for b, a in pads):
        image = np.pad(image, pads, mode="reflect" if min(image.shape[1:]) > 1 else "edge")
    return image, tuple(crop)


@torch.no_grad()
def predict_logits(
    model: torch.nn.Module,
    image: np.ndarray,
    *,
    rule: SizeRule,
    device: torch.device | str = "cpu",
    tile: tuple[int, ...] | None = None,
    halo: tuple[int, ...] | None = None,
    autocast: bool = False,
) -> np.ndarray:
    """Network output before the head's activations, ``(K, *spatial)`` float32, for ``image (C, *spatial)``.

    Without ``tile`` the whole image is padded (reflection) to the next valid size, run once and cropped. With
    ``tile`` (a valid size) the image is cut into tiles whose centres (``tile - 2 * halo`` wide) tile it;
    ``halo`` must be a multiple of the step (see :func:`runner.models.halo` with ``round_to_step=True``).
    """
    was_training = model.training
    model.eval()
    try:
        if tile is None:
            padded, crop = _pad_to(image, rule.round_up(image.shape[1:]))
            out = _run(model, padded[np.newaxis], device, autocast)[0]
            return out[crop]
        return _tiled(model, image, rule, device, tuple(tile), tuple(halo or (0,) * len(tile)), autocast)
    finally:
        model.train(was_training)


def _run(model: torch.nn.Module, batch: np.ndarray, device, autocast: bool) -> np.ndarray:
    x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(device)
    dev = torch.device(device)
    logits = cast(_TensorFn, model.logits)
    if autocast and dev.type == "cuda":
        with torch.autocast("cuda", dtype=torch.bfloat16):
            y = logits(x)
    else:
        y = logits(x)
    return y.float().cpu().numpy()


def _tiled(
    model,
    image: np.ndarray,
    rule: SizeRule,
    device,
    tile: tuple[int, ...],
    halo: tuple[int, ...],
    autocast: bool,
) -> np.ndarray:
    spatial = image.shape[1:]
    core = tuple(t - 2 * h for t, h in zip(tile, halo, strict=True))
    if any(c <= 0 for c in core) or not rule.valid(tile):
        raise ValueError(f"tile {tile} must be a valid input size and larger than twice the halo {halo}")
    counts = [-(-s // c) for s, c in zip(spatial, core, strict=True)]
    pads = [(0, 0)] + [(h, n * c - s + h) for s, c, n, h in zip(spatial, core, counts, halo, strict=True)]
    padded = np.pad(image, pads, mode="reflect" if min(spatial) > 1 else "edge")
    out: np.ndarray | None = None
    for index in np.ndindex(*counts):
        origin = [i * c for i, c in zip(index, core, strict=True)]
        src = (slice(None), *(slice(o, o + t) for o, t in zip(origin, tile, strict=True)))
        pred = _run(model, padded[src][np.newaxis], device, autocast)[0]
        if out is None:
            out = np.zeros((pred.shape[0], *[n * c for n, c in zip(counts, core, strict=True)]), np.float32)
        centre = (slice(None), *(slice(h, h + c) for h, c in zip(halo, core, strict=True)))
        dst = (slice(None), *(slice(o, o + c) for o, c in zip(origin, core, strict=True)))
        out[dst] = pred[centre]
    assert out is not None, "there is at least one tile"
    return out[(slice(None), *(slice(0, s) for s in spatial))]


def activate(model: torch.nn.Module, logits: np.ndarray) -> np.ndarray:
    """Apply the network head's per-channel activations to ``logits (K, *spatial)``."""
    with torch.no_grad():
        head = cast(torch.nn.Module, model.head)
        y = cast(_TensorFn, head.activate)(torch.from_numpy(logits[np.newaxis]))
    return y[0].numpy()


def predict(
    model: torch.nn.Module,
    image: np.ndarray,
    *,
    rule: SizeRule,
    device: torch.device | str = "cpu",
    tile: tuple[int, ...] | None = None,
    halo: tuple[int, ...] | None = None,
) -> np.ndarray:
    """Network output (after activations) ``(K, *spatial)`` for a normalised ``image (C, *spatial)``."""
    return activate(model, predict_logits(model, image, rule=rule, device=device, tile=tile, halo=halo))

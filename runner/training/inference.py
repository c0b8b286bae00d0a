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
    ``tile`` (a valid size) the image is cut into tiles of at most that size, each keeping ``halo`` pixels of
    context (:func:`runner.models.halo` with ``round_to_step=True``), stitched by the same tiler as
    ``runner predict`` (:mod:`runner.inference.tiling`).
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
    """Tiles of at most ``tile`` pixels with ``halo`` pixels of context, planned and stitched by
    :mod:`runner.inference.tiling` (the tiler ``runner predict`` uses)."""
    from fractions import Fraction

    from runner.inference.sizes import SizeRule as AxisRule
    from runner.inference.tiling import OutputGeometry, pad_image, plan_tiles, run_tiled

    if not rule.valid(tile) or any(t <= 2 * h for t, h in zip(tile, halo, strict=True)):
        raise ValueError(f"tile {tile} must be a valid input size and larger than twice the halo {halo}")
    rules = [AxisRule(kind="parameterized", min=m, step=s) for m, s in zip(rule.min, rule.step, strict=True)]
    plan = plan_tiles(shape=image.shape[1:], rules=rules, margins=halo, max_tile=tile)
    padded = pad_image(image, plan, mode="reflect" if min(image.shape[1:]) > 1 else "edge")
    (out,) = run_tiled(
        [padded],
        forward=lambda batch: [_run(model, batch[0], device, autocast)],
        plan=plan,
        outputs=[OutputGeometry(ratio=tuple(Fraction(1) for _ in tile))],
    )
    return out


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

"""PatchPerPix targets (code ``PPP``): per-pixel binary shape patches, foreground and overlap.

For every foreground pixel ``x`` and every offset ``dx`` of a fixed patch window (e.g. 25x25 or 9x9x9, odd
sizes, centred on ``x``), the patch target says whether ``x + dx`` belongs to the same instance as ``x``.

Channel order (``C = 2 + K`` channels for ``K = prod(patch)`` offsets):

- channel ``0`` — **foreground**: the pixel belongs to at least one instance;
- channels ``1 .. K`` — **patch**: channel ``1 + k`` holds offset ``k`` of the window in C (raster) order,
  i.e. ``k = ravel_multi_index(dx + patch // 2, patch)``; offset ``0`` (the centre, channel ``1 + K // 2``)
  repeats the foreground. Background pixels, overlap pixels and offsets falling outside the image are 0;
- channel ``K + 1`` — **overlap**: the pixel belongs to two or more instances (always 0 for a label image;
  it comes from an overlapping ground-truth stack ``(N, (Z,) Y, X)``).

The shape patch of an overlap pixel is undefined (PatchPerPix, Sec. 2.3): its patch channels are 0 and
:func:`patch_loss_mask` leaves it out of the patch loss, which also ignores background pixels. The foreground
and overlap channels are trained on every pixel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from runner.errors import UserError
from runner.targets.codes import ChannelSpec, TargetCode, TargetOptions, register_code


@dataclass(frozen=True)
class PatchLayout:
    """Channel layout of a PPP prediction or target.

    Attributes
    ----------
    patch : tuple of int
        Window shape ``((Z,) Y, X)``, odd sizes.
    offsets : (K, ndim) ndarray of int64
        Offset of each patch channel from the centre pixel, in channel (raster) order.
    overlap : bool
        Whether the last channel is the overlap class.
    """

    patch: tuple[int, ...]
    offsets: np.ndarray
    overlap: bool

    @property
    def n_offsets(self) -> int:
        return len(self.offsets)

    @property
    def n_channels(self) -> int:
        return 1 + self.n_offsets + int(self.overlap)

    @property
    def centre(self) -> int:
        """Index of offset 0 among the patch channels."""
        return self.n_offsets // 2


def check_patch(patch, ndim: int | None = None) -> tuple[int, ...]:
    """``patch`` as a tuple of odd positive ints (2 or 3, ``ndim`` when given); a UserError otherwise."""
    if patch is None:
        raise UserError(
            "PatchPerPix needs a patch shape", hint="pass --patch 25,25 (2D) or --patch 9,9,9 (3D)"
        )
    try:
        shape = tuple(int(p) for p in patch)
    except (TypeError, ValueError):
        raise UserError(
            f"patch shape must be 2 or 3 integers, got {patch!r}", hint="e.g. 25,25 or 9,9,9"
        ) from None
    if len(shape) not in (2, 3) or any(p < 1 or p % 2 == 0 for p in shape):
        raise UserError(
            f"patch shape must be 2 or 3 odd positive sizes (a centre pixel), got {shape}",
            hint="e.g. 25,25 or 9,9,9",
        )
    if ndim is not None and len(shape) != ndim:
        raise UserError(
            f"patch shape {shape} is {len(shape)}D but the data is {ndim}D",
            hint=f"give {ndim} sizes, e.g. {','.join(['9'] * ndim)}",
        )
    from runner.safety import check_shape

    # one channel per offset: the offset table alone, before any image, must fit the memory budget
    k = 1
    for p in shape:
        k *= p
    check_shape(
        (k, 2 * len(shape) + 1),
        itemsize=8,
        what=f"the {k} channels of the PPP patch {shape}",
        hint="PatchPerPix patches are small windows such as 25,25 or 9,9,9",
    )
    return shape


def patch_offsets(patch: tuple[int, ...]) -> np.ndarray:
    """``(K, ndim)`` int64 offsets of a ``patch`` window from its centre, in raster (channel) order."""
    grids = np.meshgrid(*[np.arange(p) - p // 2 for p in patch], indexing="ij")
    return np.stack([g.ravel() for g in grids], axis=1).astype(np.int64)


def patch_layout(patch, *, overlap: bool = True) -> PatchLayout:
    shape = check_patch(patch)
    return PatchLayout(shape, patch_offsets(shape), overlap)


def _shift_slices(offset: np.ndarray, shape: tuple[int, ...]) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
    """Slices ``(dst, src)`` such that ``out[dst] = arr[src]`` reads ``arr[x + offset]`` at ``x``."""
    dst, src = [], []
    for o, n in zip(offset, shape, strict=True):
        o = int(o)
        dst.append(slice(max(0, -o), min(n, n - o)))
        src.append(slice(max(0, o), min(n, n + o)))
    return tuple(dst), tuple(src)


def _patches_from_labels(labels: np.ndarray, offsets: np.ndarray, out: np.ndarray) -> None:
    """Fill ``out[k]`` with ``labels[x] == labels[x + offsets[k]] > 0``."""
    fg = labels > 0
    for k, off in enumerate(offsets):
        dst, src = _shift_slices(off, labels.shape)
        out[k][dst] = (labels[src] == labels[dst]) & fg[dst]


def _patches_from_stack(stack: np.ndarray, single: np.ndarray, offsets: np.ndarray, out: np.ndarray) -> None:
    """Fill ``out[k]`` at pixels of exactly one plane (``single``): is ``x + offsets[k]`` in that plane?"""
    for start in range(0, len(stack), 64):
        chunk = stack[start : start + 64] > 0
        bits = np.zeros(stack.shape[1:], np.uint64)
        for i, plane in enumerate(chunk):
            bits |= plane.astype(np.uint64) << np.uint64(i)
        own = np.where(single, bits, np.uint64(0))
        for k, off in enumerate(offsets):
            dst, src = _shift_slices(off, bits.shape)
            out[k][dst] = np.maximum(out[k][dst], (bits[src] & own[dst]) != 0)


def ppp_targets(labels: np.ndarray, patch, *, overlapping: bool = False) -> np.ndarray:
    """PatchPerPix target channels (see the module docstring for the order).

    Parameters
    ----------
    labels : (Y, X) or (Z, Y, X) ndarray of int, or (N, (Z,) Y, X) when ``overlapping``
        Instance labels (0 = background), or an overlapping stack with one object per plane.
    patch : sequence of int
        Patch window ``((Z,) Y, X)``, odd sizes, as many as the spatial dimensions.
    overlapping : bool
        ``labels`` is an overlapping stack.

    Returns
    -------
    (2 + K, (Z,) Y, X) ndarray of float32
        Foreground, ``K = prod(patch)`` patch channels, overlap.
    """
    labels = np.asarray(labels)
    spatial = labels.ndim - int(overlapping)
    if spatial not in (2, 3):
        what = "an overlapping stack (N,(Z,)Y,X)" if overlapping else "a (Z,)Y,X label image"
        raise UserError(f"PPP targets need {what}, got shape {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer) and not np.issubdtype(labels.dtype, np.bool_):
        raise UserError(f"PPP targets need integer labels, got dtype {labels.dtype}")
    layout = patch_layout(check_patch(patch, spatial), overlap=True)
    shape = labels.shape[1:] if overlapping else labels.shape
    out = np.zeros((layout.n_channels, *shape), np.float32)
    patches = out[1 : 1 + layout.n_offsets]
    if overlapping:
        count = (labels > 0).sum(axis=0, dtype=np.int32)
        out[0] = count >= 1
        out[-1] = count >= 2
        if len(labels):
            _patches_from_stack(labels, count == 1, layout.offsets, patches)
    else:
        out[0] = labels > 0
        _patches_from_labels(labels, layout.offsets, patches)
    return out


def patch_loss_mask(targets, *, batched: bool = False):
    """Pixels whose patch channels enter the loss: foreground and not overlap.

    Parameters
    ----------
    targets : (C, (Z,) Y, X) ndarray or tensor, or (B, C, (Z,) Y, X) when ``batched``
        PPP targets (foreground first, overlap last); numpy arrays and torch tensors both work.
    batched : bool
        Whether axis 0 is the batch axis.

    Returns
    -------
    ((Z,) Y, X) boolean mask, or (B, 1, (Z,) Y, X) when ``batched`` (same array type as ``targets``).
    """
    if batched:
        return (targets[:, :1] > 0.5) & (targets[:, -1:] < 0.5)
    return (targets[0] > 0.5) & (targets[-1] < 0.5)


def per_crop(specs: list[ChannelSpec]) -> bool:
    """Whether targets with these channels must be made per training crop, after the geometric augmentation.

    Shape patches are tied to the pixel grid (a flip or a warp changes which offset is which) and are
    ``prod(patch)`` channels per pixel, too many to keep for a whole dataset: training makes them from each
    augmented label crop instead.
    """
    return any(s.kind == "patch" for s in specs)


def patch_channels(specs: list[ChannelSpec]) -> tuple[list[int], np.ndarray]:
    """Indices of the patch channels among ``specs`` and their ``(K, ndim)`` offsets (from their names)."""
    index = [i for i, s in enumerate(specs) if s.kind == "patch"]
    offsets = [[int(v) for v in specs[i].name[len("patch[") : -1].split(",")] for i in index]
    return index, (np.asarray(offsets, np.int64) if index else np.zeros((0, 0), np.int64))


def patch_loss(logits, targets, weight, channels: list[int], offsets: np.ndarray):
    """Binary cross-entropy of the patch channels, on the foreground pixels that are no overlap (PPP).

    Offsets that leave the array (crop or image) are left out: their target is unknown there. The loss is the
    mean over every counted (pixel, offset).

    Parameters
    ----------
    logits, targets : (B, C, (Z,) Y, X) torch tensors
        Network output before the sigmoid and PPP targets (foreground first, overlap last).
    weight : (B, (Z,) Y, X) torch tensor
        Per-pixel weights (padding mask times optional pixel weights).
    channels : list of int
        Indices of the patch channels.
    offsets : (K, ndim) ndarray of int
        Offset of each of these channels (:func:`patch_channels`).

    Returns
    -------
    Scalar torch tensor.
    """
    import torch
    import torch.nn.functional as F

    spatial = tuple(targets.shape[2:])
    k = len(channels)
    off = torch.as_tensor(offsets, device=targets.device)
    inside = torch.ones((k, *spatial), dtype=torch.bool, device=targets.device)
    for axis, n in enumerate(spatial):
        coord = torch.arange(n, device=targets.device) + off[:, axis : axis + 1]  # (K, n)
        shape = [k] + [n if a == axis else 1 for a in range(len(spatial))]
        inside = inside & ((coord >= 0) & (coord < n)).reshape(shape)
    pixel = weight * patch_loss_mask(targets, batched=True)[:, 0].to(weight.dtype)  # (B, ...)
    w = pixel[:, None] * inside[None].to(weight.dtype)  # (B, K, ...)
    idx = torch.as_tensor(channels, device=targets.device)
    bce = F.binary_cross_entropy_with_logits(logits[:, idx], targets[:, idx], reduction="none")
    return (bce * w).sum() / w.sum().clamp_min(1e-6)


def _specs(options: TargetOptions) -> list[ChannelSpec]:
    layout = patch_layout(options.patch)
    specs = [ChannelSpec("fg", "binary", "sigmoid", (0.0, 1.0), "foreground: pixel in at least one instance")]
    for off in layout.offsets:
        name = "patch[" + ",".join(f"{int(o):+d}" for o in off) + "]"
        specs.append(
            ChannelSpec(
                name,
                "patch",
                "sigmoid",
                (0.0, 1.0),
                f"pixel at offset {tuple(int(o) for o in off)} is in the same instance",
            )
        )
    specs.append(ChannelSpec("overlap", "binary", "sigmoid", (0.0, 1.0), "pixel in two or more instances"))
    return specs


def _build(labels: np.ndarray, options: TargetOptions, *, overlapping: bool = False) -> np.ndarray:
    return ppp_targets(labels, options.patch, overlapping=overlapping)


register_code(
    TargetCode(
        name="PPP",
        description="PatchPerPix: foreground, one shape-patch channel per offset (raster order), overlap",
        channel_specs=_specs,
        build=_build,
        supports_overlap=True,
    )
)

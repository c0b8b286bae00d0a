"""BiaPy-style target channels (B, C, D, M, P, Dv2) computed for all objects at once.

Semantics, for an instance label image ``L`` (0 = background):

- **M** — ``L > 0``.
- **C** — the contour band. ``inner`` (default): object pixels whose distance to the outside of their own
  object (background or another id) is at most ``contour_width``; so ``B + C`` is exactly the object and
  touching objects each keep their own border. ``thick`` adds the background band of the same width around
  objects; ``outer`` keeps only that background band.
- **B** — object pixels that are not contour.
- **D** — each object pixel's Euclidean distance to the outside of its object (1 for pixels touching the
  outside), honouring ``resolution``; divided by the object's maximum (``instance``, default), by the
  image's maximum (``image``) or kept in physical units (``none``). Background is 0.
- **P** — a disk/ball of ``point_radius`` around each object's centre (the pixel farthest from its edge,
  which always lies inside the object, unlike the centroid of a curved object), clipped to the object.
- **Dv2** — signed distance: ``+D`` (per-object normalised) on interior pixels, 0 on the contour band, and
  minus the distance to the nearest object, divided by the image's largest such distance, in the background.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit
from scipy import ndimage as ndi

from runner.errors import UserError
from runner.io.images import as_label_array
from runner.labelops import edge_distance, label_max, normalize_per_label, relabel_sequential
from runner.targets.codes import CHANNELS, ChannelSpec, TargetCode, TargetOptions, register_code, split_code

STANDARD_CODES = {
    "B": "binary interior mask only",
    "C": "contour only",
    "M": "foreground mask only",
    "D": "distance to the object edge only",
    "P": "centre points only",
    "Dv2": "signed distance only (seeds and growth from one channel)",
    "BC": "interior + contour",
    "BP": "interior + centre points",
    "BD": "interior + distance",
    "BCM": "interior + contour + foreground mask",
    "BCD": "interior + contour + distance (the default for nuclei)",
    "BCDv2": "interior + contour + signed distance",
    "BDv2": "interior + signed distance",
}


class _Cache:
    """Intermediate maps shared by several channels of one call."""

    def __init__(self, labels: np.ndarray, options: TargetOptions):
        self.labels, self.n = relabel_sequential(labels)
        self.options = options
        self._cache: dict[str, np.ndarray] = {}

    def get(self, key: str) -> np.ndarray:
        if key not in self._cache:
            self._cache[key] = getattr(self, f"_{key}")()
        return self._cache[key]

    # pixel-unit edge distance: defines the contour band
    def _edge_px(self) -> np.ndarray:
        return edge_distance(self.labels)

    # physical edge distance: defines D, P centres
    def _edge(self) -> np.ndarray:
        res = self.options.resolution
        if res is None or all(r == 1 for r in res):
            return self.get("edge_px")
        _check_resolution(res, self.labels.ndim)
        return edge_distance(self.labels, res)

    def _fg(self) -> np.ndarray:
        return self.labels > 0

    def _bg_distance(self) -> np.ndarray:
        fg = self.get("fg")
        if not fg.any():
            return np.zeros(fg.shape, np.float32)
        return edge_distance((~fg).astype(np.uint8), self.options.resolution)

    def _inner(self) -> np.ndarray:
        return self.get("fg") & (self.get("edge_px") <= self.options.contour_width)

    def _outer(self) -> np.ndarray:
        fg = self.get("fg")
        if not fg.any():
            return np.zeros(fg.shape, bool)
        return ~fg & (edge_distance((~fg).astype(np.uint8)) <= self.options.contour_width)

    def _C(self) -> np.ndarray:
        mode = self.options.contour_mode
        if mode == "inner":
            return self.get("inner")
        if mode == "outer":
            return self.get("outer")
        return self.get("inner") | self.get("outer")

    def _B(self) -> np.ndarray:
        return self.get("fg") & ~self.get("inner")

    def _M(self) -> np.ndarray:
        return self.get("fg")

    def _D(self) -> np.ndarray:
        d = self.get("edge")
        norm = self.options.distance_norm
        if norm == "none" or self.n == 0:
            return d
        if norm == "image":
            return d / d.max()
        return normalize_per_label(self.labels, d, self.n)

    def _P(self) -> np.ndarray:
        points = np.zeros(self.labels.shape, np.uint32)
        if self.n == 0:
            return points.astype(bool)
        _, arg = label_max(self.labels, self.get("edge"), self.n)
        arg = arg[1:][arg[1:] >= 0]
        points.ravel()[arg] = self.labels.ravel()[arg]
        r = self.options.point_radius
        res = self.options.resolution or (1.0,) * self.labels.ndim
        radii = [max(0, int(np.floor(r * min(res) / s))) for s in res]
        grids = np.ogrid[tuple(slice(-k, k + 1) for k in radii)]
        footprint = sum((g * s / min(res)) ** 2 for g, s in zip(grids, res, strict=True)) <= r * r + 1e-9
        grown = ndi.grey_dilation(points, footprint=footprint)
        return (grown == self.labels) & self.get("fg")

    def _Dv2(self) -> np.ndarray:
        inner = self.get("B")
        d = self.get("D") if self.options.distance_norm == "instance" else _instance_normalised(self)
        out = np.where(inner, d, 0.0).astype(np.float32)
        bg = ~self.get("fg")
        bgd = self.get("bg_distance")
        if bg.any() and bgd.max() > 0:
            out[bg] = -bgd[bg] / bgd.max()
        return out


def _instance_normalised(cache: _Cache) -> np.ndarray:
    return normalize_per_label(cache.labels, cache.get("edge"), cache.n)


def _check_resolution(res: tuple[float, ...], ndim: int) -> None:
    if len(res) != ndim:
        raise UserError(f"resolution {res} has {len(res)} values but the labels are {ndim}D")


_FUSED = {"B": 0, "C": 1, "D": 2, "M": 3}
_MAX_DIRECT_ID = 2**22
"""Largest label id indexed directly by the fused path (larger ids, or ids above the pixel count, are
renumbered first)."""


@njit(cache=True, nogil=True, parallel=True)
def _fused_bcdm(labels, dist, n, width, slots, chunks, out):
    """B, C, D (per-object normalised), M in two parallel passes: per-label maximum of ``dist``, then the
    channels."""
    size = labels.size
    step = (size + chunks - 1) // chunks
    partial = np.zeros((chunks, n + 1), np.float32)
    for c in numba.prange(chunks):
        row = partial[c]
        for i in range(c * step, min(size, (c + 1) * step)):
            lab = labels[i]
            if lab != 0 and dist[i] > row[lab]:
                row[lab] = dist[i]
    best = np.zeros(n + 1, np.float32)
    for c in range(chunks):
        for j in range(n + 1):
            if partial[c, j] > best[j]:
                best[j] = partial[c, j]
    sb, sc, sd, sm = slots[0], slots[1], slots[2], slots[3]
    for c in numba.prange(chunks):
        for i in range(c * step, min(size, (c + 1) * step)):
            lab = labels[i]
            if lab == 0:
                for k in range(out.shape[0]):
                    out[k, i] = 0.0
                continue
            d = dist[i]
            contour = d <= width
            if sb >= 0:
                out[sb, i] = 0.0 if contour else 1.0
            if sc >= 0:
                out[sc, i] = 1.0 if contour else 0.0
            if sd >= 0:
                out[sd, i] = d / best[lab] if best[lab] > 0 else 0.0
            if sm >= 0:
                out[sm, i] = 1.0


def _fused_eligible(labels: np.ndarray, tokens: list[str], options: TargetOptions) -> bool:
    res = options.resolution
    return (
        bool(tokens)
        and all(t in _FUSED for t in tokens)
        and len(set(tokens)) == len(tokens)
        and options.contour_mode == "inner"
        and options.distance_norm == "instance"
        and (res is None or all(r == 1 for r in res))
        and labels.dtype.kind in "ui"
    )


def _make_fused(labels: np.ndarray, tokens: list[str], options: TargetOptions) -> np.ndarray:
    """B/C/D/M without renumbering or intermediate maps: one multi-label EDT, then one fused pass."""
    if labels.dtype.kind == "i":
        labels = as_label_array(labels)  # the kernel indexes by id: negative ids must not reach it
    top = int(labels.max()) if labels.size else 0
    if top > min(_MAX_DIRECT_ID, labels.size):  # sparse ids: renumber rather than index a huge table
        labels, top = relabel_sequential(labels)
    labels = np.ascontiguousarray(labels)
    flat = labels.ravel()
    dist = edge_distance(labels).ravel()
    slots = np.full(4, -1, np.int64)
    for k, t in enumerate(tokens):
        slots[_FUSED[t]] = k
    out = np.empty((len(tokens), labels.size), np.float32)
    chunks = max(1, min(numba.get_num_threads() * 4, labels.size // 65536 + 1))
    _fused_bcdm(flat, dist, top, float(options.contour_width), slots, chunks, out)
    return out.reshape((len(tokens), *labels.shape))


def make_channels(labels: np.ndarray, tokens: list[str], options: TargetOptions) -> np.ndarray:
    """Stack the channels named by ``tokens`` for ``labels`` (``(Y, X)`` or ``(Z, Y, X)``)."""
    if labels.ndim not in (2, 3):
        raise UserError(f"labels must be 2D or 3D, got shape {labels.shape}")
    if options.resolution is not None:
        _check_resolution(options.resolution, labels.ndim)
    if _fused_eligible(labels, tokens, options):
        return _make_fused(labels, tokens, options)
    cache = _Cache(labels, options)
    out = np.empty((len(tokens), *labels.shape), np.float32)
    for i, t in enumerate(tokens):
        out[i] = cache.get(t)
    return out


def _register_standard() -> None:
    for name, desc in STANDARD_CODES.items():
        tokens = split_code(name)

        def specs(options: TargetOptions, tokens: list[str] = tokens) -> list[ChannelSpec]:
            out = []
            for t in tokens:
                spec = CHANNELS[t]
                if t == "D" and options.distance_norm != "none":
                    spec = ChannelSpec(t, spec.kind, spec.activation, (0.0, 1.0), spec.description)
                out.append(spec)
            return out

        def build(
            labels, options, *, overlapping: bool = False, tokens: list[str] = tokens, name: str = name
        ):
            if overlapping:
                raise UserError(
                    f"target code {name} needs a label image, not an overlapping stack",
                    hint="use code PPP for overlapping objects",
                )
            return make_channels(labels, tokens, options)

        register_code(TargetCode(name=name, description=desc, channel_specs=specs, build=build))


_register_standard()

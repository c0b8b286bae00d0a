"""Format-0.4 pre/post-processing, translated op by op to format 0.5 for bioimageio.core's operators.

A 0.4 description is used natively when bioimageio.spec's 0.4 -> 0.5 converter refuses the whole description
(e.g. a fixed output shape with a halo). bioimageio.core 0.11 builds operators from 0.4 ops itself, but
refuses ``scale_linear`` with ``axes`` (``NotImplementedError``, even for scalar gains as in ``axes: yx, gain:
0.5``) and names axes by their 0.4 letters (``c``), while runner names them ``channel``/``batch``. So each 0.4
op is translated here to its 0.5 description (axis letters to ids, ``mode: per_dataset`` to ``batch`` among
the reduced axes, per-channel values to ``...AlongAxis`` along the one axis ``axes`` leaves out) and handed to
bioimageio.core's ``get_proc``; the 0.4 data-type casts are kept as core applies them (the tensor's
``data_type`` first, ``float32`` last).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from runner.errors import UserError

_IDS = {"b": "batch", "c": "channel", "i": "index", "t": "time"}


def _ids(letters: str | None, *, per_dataset: bool = False) -> list | None:
    from bioimageio.spec.model import v0_5

    if letters is None:
        return None
    ids = [v0_5.AxisId(_IDS.get(a, a)) for a in letters]
    if per_dataset and v0_5.AxisId("batch") not in ids:
        ids.insert(0, v0_5.AxisId("batch"))
    return ids


def _complement(tensor_axes: str, axes: str, what: str) -> Any:
    """The one non-batch axis of the tensor that ``axes`` leaves out (where per-channel values run)."""
    from bioimageio.spec.model import v0_5

    rest = [a for a in tensor_axes if a != "b" and a not in axes]
    if len(rest) != 1:
        raise UserError(
            f"{what}: per-axis values need exactly one axis outside axes={axes!r} "
            f"(tensor axes {tensor_axes!r})"
        )
    return v0_5.AxisId(_IDS.get(rest[0], rest[0]))


def _scalar(value: Any) -> float | None:
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, Sequence) and len(value) == 1:
        return float(value[0])
    return None


def _along(value: Any, n: int) -> list[float]:
    return [float(v) for v in value] if isinstance(value, Sequence) else [float(value)] * n


def _scale_linear(p: Any, tensor_axes: str) -> Any:
    from bioimageio.spec.model import v0_5

    k = p.kwargs
    gain, offset = _scalar(k.gain), _scalar(k.offset)
    if gain is not None and offset is not None:
        return v0_5.ScaleLinearDescr(kwargs=v0_5.ScaleLinearKwargs(gain=gain, offset=offset))
    n = max(len(v) for v in (k.gain, k.offset) if isinstance(v, Sequence))
    axis = _complement(tensor_axes, k.axes or "", "scale_linear")
    kwargs = v0_5.ScaleLinearAlongAxisKwargs(axis=axis, gain=_along(k.gain, n), offset=_along(k.offset, n))
    return v0_5.ScaleLinearDescr(kwargs=kwargs)


def _fixed_zmuv(p: Any, tensor_axes: str) -> Any:
    from bioimageio.spec.model import v0_5

    k = p.kwargs
    mean, std = _scalar(k.mean), _scalar(k.std)
    if mean is not None and std is not None:
        return v0_5.FixedZeroMeanUnitVarianceDescr(
            kwargs=v0_5.FixedZeroMeanUnitVarianceKwargs(mean=mean, std=std)
        )
    n = max(len(v) for v in (k.mean, k.std) if isinstance(v, Sequence))
    axis = _complement(tensor_axes, k.axes, "zero_mean_unit_variance (fixed)")
    kwargs = v0_5.FixedZeroMeanUnitVarianceAlongAxisKwargs.model_construct(
        axis=axis, mean=_along(k.mean, n), std=_along(k.std, n)
    )
    return v0_5.FixedZeroMeanUnitVarianceDescr(kwargs=kwargs)


def to_v05(p: Any, tensor_axes: str) -> Any:
    """The format-0.5 description of one format-0.4 processing step of a tensor with axes ``tensor_axes``."""
    from bioimageio.spec.model import v0_4, v0_5

    k: Any = getattr(p, "kwargs", None)
    if isinstance(p, v0_4.BinarizeDescr):
        return v0_5.BinarizeDescr(kwargs=v0_5.BinarizeKwargs(threshold=k.threshold))
    if isinstance(p, v0_4.ClipDescr):
        return v0_5.ClipDescr(kwargs=v0_5.ClipKwargs(min=k.min, max=k.max))
    if isinstance(p, v0_4.SigmoidDescr):
        return v0_5.SigmoidDescr()
    if isinstance(p, v0_4.ScaleLinearDescr):
        return _scale_linear(p, tensor_axes)
    if isinstance(p, v0_4.ZeroMeanUnitVarianceDescr) and k.mode == "fixed":
        return _fixed_zmuv(p, tensor_axes)
    per_dataset = getattr(k, "mode", "per_sample") == "per_dataset"
    if isinstance(p, v0_4.ZeroMeanUnitVarianceDescr):
        axes = _ids(k.axes, per_dataset=per_dataset)
        return v0_5.ZeroMeanUnitVarianceDescr(kwargs=v0_5.ZeroMeanUnitVarianceKwargs(axes=axes, eps=k.eps))
    if isinstance(p, v0_4.ScaleRangeDescr):
        ref = None if k.reference_tensor is None else v0_5.TensorId(str(k.reference_tensor))
        srk = v0_5.ScaleRangeKwargs.model_construct(  # 0.4 allows max_percentile <= 1, 0.5 does not
            axes=_ids(k.axes, per_dataset=per_dataset),
            min_percentile=float(k.min_percentile),
            max_percentile=float(k.max_percentile),
            eps=k.eps,
            reference_tensor=ref,
        )
        return v0_5.ScaleRangeDescr(kwargs=srk)
    if isinstance(p, v0_4.ScaleMeanVarianceDescr):
        kwargs = v0_5.ScaleMeanVarianceKwargs(
            axes=_ids(k.axes, per_dataset=per_dataset),
            reference_tensor=v0_5.TensorId(str(k.reference_tensor)),
            eps=k.eps,
        )
        return v0_5.ScaleMeanVarianceDescr(kwargs=kwargs)
    raise UserError(f"unsupported format-0.4 processing step {type(p).__name__}")


def v04_operators(tensors: Sequence[Any]) -> list[Any]:
    """bioimageio.core operators for the pre- (inputs) or post-processing (outputs) of 0.4 tensors."""
    from bioimageio.core.proc_ops import EnsureDtype, get_proc
    from bioimageio.spec.model import v0_4

    ops: list[Any] = []
    for t in tensors:
        steps = t.preprocessing if isinstance(t, v0_4.InputTensorDescr) else t.postprocessing
        if not steps:
            continue
        member = str(t.name)
        ops.append(EnsureDtype(input=member, output=member, dtype=t.data_type))  # type: ignore[arg-type]
        ops += [get_proc(to_v05(p, t.axes), t) for p in steps]
        ops.append(EnsureDtype(input=member, output=member, dtype="float32"))  # type: ignore[arg-type]
    return ops

"""The rdf's pre- and post-processing, applied with bioimageio.core's own operators on the whole sample.

bioimageio.core builds the operators (``zero_mean_unit_variance``, ``scale_range``, ``sigmoid``, ...) from the
description; we run them on the whole image before tiling and on the whole stitched output after it, so sample
statistics (means, percentiles) are those of the image, never of a tile, and results match ``bioimageio
predict``. Statistics of inputs are computed on the raw input (as bioimageio.core does); statistics of
outputs, which bioimageio.core's pre-processing step cannot see, are computed on the stitched output before
post-processing. Dataset statistics (``per_dataset`` modes) are running statistics over the images processed
so far, again as in bioimageio.core.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np

from runner.errors import UserError


@dataclass
class Processing:
    """Pre/post-processing operators of one model and the statistics calculators they need."""

    pre: list[Any]
    post: list[Any]
    input_stats: Any = None
    output_stats: Any = None
    input_ids: tuple[str, ...] = ()
    output_ids: tuple[str, ...] = ()
    last_stat: dict = field(default_factory=dict)

    @classmethod
    def from_description(
        cls, descr, *, trust_code: bool = False, where: str | Path | None = None
    ) -> Processing:
        """Operators from ``bioimageio.core.proc_setup``; custom (code) operators need ``trust_code``.

        A format-0.4 description (used natively where the converter refuses it) gets its operators from
        :func:`runner.inference.processing04.v04_operators`, each op translated to its 0.5 form first.
        """
        from bioimageio.core.proc_ops import AddKnownDatasetStats, CustomProcessing, UpdateStats
        from bioimageio.core.proc_setup import setup_pre_and_postprocessing
        from bioimageio.core.stat_calculators import StatsCalculator
        from bioimageio.spec.model import v0_4

        if isinstance(descr, v0_4.ModelDescr):  # read natively: the 0.4 -> 0.5 converter refused it
            from runner.inference.processing04 import v04_operators

            pre, post = v04_operators(descr.inputs), v04_operators(descr.outputs)
        else:
            setup = setup_pre_and_postprocessing(descr, dataset_for_initial_statistics=[])
            pre = [op for op in setup.pre if not isinstance(op, (UpdateStats, AddKnownDatasetStats))]
            post = list(setup.post)
        pre, post = [_as_specified(op) for op in pre], [_as_specified(op) for op in post]
        if not trust_code and any(isinstance(op, CustomProcessing) for op in (*pre, *post)):
            raise UserError(
                "the model's pre/post-processing runs the package's own Python code",
                path=where,
                hint="pass --trust-code if you trust the package",
            )
        input_ids = tuple(str(getattr(t, "id", None) or t.name) for t in descr.inputs)  # 0.4: name
        output_ids = tuple(str(getattr(t, "id", None) or t.name) for t in descr.outputs)
        measures = {m for op in (*pre, *post) for m in op.required_measures}
        in_m = {m for m in measures if str(m.member_id) in input_ids}
        out_m = {m for m in measures if str(m.member_id) not in input_ids}
        return cls(
            pre=pre,
            post=post,
            input_ids=input_ids,
            output_ids=output_ids,
            input_stats=StatsCalculator(in_m) if in_m else None,
            output_stats=StatsCalculator(out_m) if out_m else None,
        )

    def preprocess(
        self, arrays: dict[str, np.ndarray], axes: dict[str, tuple[str, ...]]
    ) -> dict[str, np.ndarray]:
        """Apply the input operators to whole images.

        Parameters
        ----------
        arrays : per input id, the image in the model's axis order (batch of one where the model has a batch
        axis).
        axes : per input id, the model's axis ids for ``arrays``.

        Returns
        -------
        dict
            Per input id, the preprocessed array (float64 results are brought to float32).
        """
        from bioimageio.core import Sample, Tensor

        # bioimageio keys members by TensorId, a str subclass: our plain str ids hash and compare the same
        members: dict[Any, Tensor] = {k: Tensor(v, dims=axes[k]) for k, v in arrays.items()}
        sample = Sample(members=members, stat={}, id=None)
        if self.input_stats is not None:
            sample.stat.update(self.input_stats.update_and_get_all(sample))
        for op in self.pre:
            op(sample)
        self.last_stat = sample.stat
        return {k: _to_array(t) for k, t in sample.members.items() if k in arrays}

    def postprocess(
        self, arrays: dict[str, np.ndarray], axes: dict[str, tuple[str, ...]]
    ) -> dict[str, np.ndarray]:
        """Apply the output operators to the whole stitched outputs (layout as in :meth:`preprocess`)."""
        if not self.post:
            return arrays
        from bioimageio.core import Sample, Tensor

        members: dict[Any, Tensor] = {k: Tensor(v, dims=axes[k]) for k, v in arrays.items()}
        sample = Sample(
            members=members,
            stat=dict(self.last_stat),
            id=None,
        )
        if self.output_stats is not None:
            sample.stat.update(self.output_stats.update_and_get_all(sample))
        for op in self.post:
            op(sample)
        outputs = cast("dict[Any, Tensor]", sample.members)
        return {k: _to_array(outputs[k]) for k in arrays}


def _as_specified(op: Any) -> Any:
    """The operator, corrected where bioimageio.core 0.11 departs from the spec.

    ``binarize`` with one threshold per entry of an axis (``BinarizeAlongAxisKwargs``): core compares the
    tensor with the plain threshold list, which numpy broadcasts along the *last* axis (an error, or
    silently the wrong axis when the sizes happen to agree). Here the thresholds are laid along the
    named axis.
    """
    from bioimageio.core.proc_ops import Binarize

    if isinstance(op, Binarize) and op.axis is not None and not isinstance(op.threshold, (int, float)):
        import dataclasses

        import xarray as xr

        threshold: Any = xr.DataArray(list(op.threshold), dims=(op.axis,))
        return dataclasses.replace(op, threshold=threshold)
    return op


def _to_array(tensor) -> np.ndarray:
    arr = np.asarray(tensor.data.values if hasattr(tensor.data, "values") else tensor.data)
    if arr.dtype == np.float64:
        arr = arr.astype(np.float32)
    return arr

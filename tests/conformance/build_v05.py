"""Format-0.5 descriptions of conformance cases (bioimageio.spec ``model.v0_5`` classes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tests.conformance.build import INPUT_IDS, OUTPUT_IDS
from tests.conformance.cases import Case, Op


def _axis_ids(v5, names) -> list:
    return [v5.AxisId(a) for a in names]


def convert_op(v5, o: Op) -> Any:
    """The spec's description of one op."""
    k = dict(o.kwargs)
    if o.name == "binarize":
        if isinstance(k["threshold"], list):
            kw = v5.BinarizeAlongAxisKwargs(threshold=k["threshold"], axis=v5.AxisId(k["axis"]))
        else:
            kw = v5.BinarizeKwargs(threshold=k["threshold"])
        return v5.BinarizeDescr(kwargs=kw)
    if o.name == "clip":
        if "axes" in k:
            k["axes"] = _axis_ids(v5, k["axes"])
        return v5.ClipDescr(kwargs=v5.ClipKwargs(**k))
    if o.name == "ensure_dtype":
        return v5.EnsureDtypeDescr(kwargs=v5.EnsureDtypeKwargs(dtype=k["dtype"]))
    if o.name == "fixed_zero_mean_unit_variance":
        if "axis" in k:
            fkw: Any = v5.FixedZeroMeanUnitVarianceAlongAxisKwargs(
                mean=k["mean"], std=k["std"], axis=v5.AxisId(k["axis"])
            )
        else:
            fkw = v5.FixedZeroMeanUnitVarianceKwargs(mean=k["mean"], std=k["std"])
        return v5.FixedZeroMeanUnitVarianceDescr(kwargs=fkw)
    if o.name == "scale_linear":
        if "axis" in k:
            skw: Any = v5.ScaleLinearAlongAxisKwargs(
                gain=k["gain"], offset=k["offset"], axis=v5.AxisId(k["axis"])
            )
        else:
            skw = v5.ScaleLinearKwargs(gain=k["gain"], offset=k["offset"])
        return v5.ScaleLinearDescr(kwargs=skw)
    if o.name == "sigmoid":
        return v5.SigmoidDescr()
    if o.name == "softmax":
        return v5.SoftmaxDescr(kwargs=v5.SoftmaxKwargs(axis=v5.AxisId(k["axis"])))
    if "axes" in k:
        k["axes"] = _axis_ids(v5, k["axes"])
    if "reference_tensor" in k:
        k["reference_tensor"] = v5.TensorId(k["reference_tensor"])
    if o.name == "zero_mean_unit_variance":
        return v5.ZeroMeanUnitVarianceDescr(kwargs=v5.ZeroMeanUnitVarianceKwargs(**k))
    if o.name == "scale_range":
        return v5.ScaleRangeDescr(kwargs=v5.ScaleRangeKwargs(**k))
    if o.name == "scale_mean_variance":
        return v5.ScaleMeanVarianceDescr(kwargs=v5.ScaleMeanVarianceKwargs(**k))
    raise ValueError(f"unknown op {o.name!r}")


def _input_axes(v5, case: Case, i: int, dims: tuple[str, ...]) -> list:
    axes = []
    for d in dims:
        if d == "batch":
            axes.append(v5.BatchAxis())
        elif d == "channel":
            names = [v5.Identifier(f"{INPUT_IDS[i]}{c}") for c in range(case.in_channels[i])]
            axes.append(v5.ChannelAxis(channel_names=names))
        elif i > 0:
            ref = v5.SizeReference(tensor_id=v5.TensorId(INPUT_IDS[0]), axis_id=v5.AxisId(d))
            axes.append(v5.SpaceInputAxis(id=v5.AxisId(d), size=ref))
        elif case.size == "fixed":
            axes.append(v5.SpaceInputAxis(id=v5.AxisId(d), size=case.test_size))
        else:
            size = v5.ParameterizedSize(min=case.min_size, step=case.step)
            axes.append(v5.SpaceInputAxis(id=v5.AxisId(d), size=size))
    return axes


def _output_axes(v5, case: Case, i: int, dims: tuple[str, ...]) -> list:
    axes = []
    for d in dims:
        if d == "batch":
            axes.append(v5.BatchAxis())
        elif d == "channel":
            names = [v5.Identifier(f"{OUTPUT_IDS[i]}c{c}") for c in range(case.out_channels[i])]
            axes.append(v5.ChannelAxis(channel_names=names))
        else:
            ref = v5.SizeReference(
                tensor_id=v5.TensorId(INPUT_IDS[0]), axis_id=v5.AxisId(d), offset=case.output_offset
            )
            common = dict(id=v5.AxisId(d), size=ref, scale=case.output_scale)
            if case.halo:
                axes.append(v5.SpaceOutputAxisWithHalo(halo=case.halo, **common))
            else:
                axes.append(v5.SpaceOutputAxis(**common))
    return axes


def _data_type(ops: tuple[Op, ...], default: str) -> str:
    """The tensor's data type as the network sees (inputs) or the user gets it (outputs): the last
    ``ensure_dtype``'s, else ``default``."""
    dtypes = [o.kwargs["dtype"] for o in ops if o.name == "ensure_dtype"]
    return dtypes[-1] if dtypes else default


def describe(
    case: Case, work: Path, *, dims: tuple[str, ...], callable_name: str, kwargs: dict, outputs: list
) -> Any:
    """The case's ``v0_5.ModelDescr`` (files in ``work``)."""
    import torch
    from bioimageio.spec.model import v0_5 as v5

    inputs = [
        v5.InputTensorDescr(
            id=v5.TensorId(INPUT_IDS[i]),
            axes=_input_axes(v5, case, i, dims),
            test_tensor=v5.FileDescr(source=work / f"test_{INPUT_IDS[i]}.npy"),
            data=v5.IntervalOrRatioDataDescr(type=_data_type(case.pre[i], case.input_dtype)),
            preprocessing=[convert_op(v5, o) for o in case.pre[i]],
        )
        for i in range(case.n_inputs)
    ]
    outs = [
        v5.OutputTensorDescr(
            id=v5.TensorId(OUTPUT_IDS[i]),
            axes=_output_axes(v5, case, i, dims),
            test_tensor=v5.FileDescr(source=work / f"test_{OUTPUT_IDS[i]}.npy"),
            data=v5.IntervalOrRatioDataDescr(type=_data_type(case.post[i], str(np.dtype(outputs[i].dtype)))),
            postprocessing=[convert_op(v5, o) for o in case.post[i]],
        )
        for i in range(case.n_outputs)
    ]
    version = v5.Version(torch.__version__.split("+")[0])
    weights = v5.WeightsDescr(
        pytorch_state_dict=v5.PytorchStateDictWeightsDescr(
            source=work / "weights.pt",
            pytorch_version=version,
            architecture=v5.ArchitectureFromFileDescr(
                source=work / "conformance_nets.py", callable=callable_name, kwargs=kwargs
            ),
        ),
        torchscript=v5.TorchscriptWeightsDescr(
            source=work / "weights.torchscript", pytorch_version=version, parent="pytorch_state_dict"
        ),
        onnx=v5.OnnxWeightsDescr(source=work / "weights.onnx", opset_version=17, parent="pytorch_state_dict"),
    )
    config = v5.Config()
    if case.tolerance is not None:
        rtol, atol, ppm = case.tolerance
        tol = v5.ReproducibilityTolerance(
            relative_tolerance=rtol, absolute_tolerance=atol, mismatched_elements_per_million=ppm
        )
        config = v5.Config(bioimageio=v5.BioimageioConfig(reproducibility_tolerance=[tol]))
    return v5.ModelDescr(
        name=f"conformance {case.id}",
        description=f"Conformance case {case.id}: {'; '.join(case.features)}.",
        authors=[v5.Author(name="runner tests")],
        cite=[v5.CiteEntry(text="runner tests", url="https://example.com")],
        license="MIT",
        documentation=v5.FileDescr(source=work / "README.md"),
        inputs=inputs,
        outputs=outs,
        weights=weights,
        config=config,
    )

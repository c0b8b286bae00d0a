"""Format-0.4 descriptions of conformance cases (bioimageio.spec ``model.v0_4`` classes)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from tests.conformance.build import INPUT_IDS, OUTPUT_IDS, axis_letters
from tests.conformance.cases import Case, Op


def convert_op(v4, o: Op, dims: tuple[str, ...]) -> Any:
    """The 0.4 description of one op (``per_sample`` unless the op says ``mode``)."""
    k = dict(o.kwargs)
    if o.name == "binarize":
        return v4.BinarizeDescr(kwargs=v4.BinarizeKwargs(threshold=k["threshold"]))
    if o.name == "clip":
        return v4.ClipDescr(kwargs=v4.ClipKwargs(min=k["min"], max=k["max"]))
    if o.name == "sigmoid":
        return v4.SigmoidDescr()
    if o.name == "scale_linear":
        # 0.4: gain/offset lists run along the axes *not* named in ``axes`` (besides batch)
        if "axes" in k:
            axes = axis_letters(k["axes"])
        else:
            axes = axis_letters(d for d in dims if d not in ("batch", k.get("axis")))
        kw = v4.ScaleLinearKwargs(axes=axes, gain=k["gain"], offset=k["offset"])
        return v4.ScaleLinearDescr(kwargs=kw)
    if o.name == "fixed_zero_mean_unit_variance":
        kw = v4.ZeroMeanUnitVarianceKwargs(
            mode="fixed", axes=axis_letters(d for d in dims if d != "batch"), mean=k["mean"], std=k["std"]
        )
        return v4.ZeroMeanUnitVarianceDescr(kwargs=kw)
    mode = k.pop("mode", "per_sample")
    axes = axis_letters(k.pop("axes"))
    if o.name == "zero_mean_unit_variance":
        return v4.ZeroMeanUnitVarianceDescr(kwargs=v4.ZeroMeanUnitVarianceKwargs(mode=mode, axes=axes, **k))
    if o.name == "scale_range":
        return v4.ScaleRangeDescr(kwargs=v4.ScaleRangeKwargs(mode=mode, axes=axes, **k))
    if o.name == "scale_mean_variance":
        return v4.ScaleMeanVarianceDescr(kwargs=v4.ScaleMeanVarianceKwargs(mode=mode, axes=axes, **k))
    raise ValueError(f"op {o.name!r} does not exist in format 0.4")


def _input_shape(v4, case: Case, i: int, dims: tuple[str, ...]) -> Any:
    sizes = {"batch": 1, "channel": case.in_channels[i]}
    if case.size == "fixed":
        return [sizes.get(d, case.test_size) for d in dims]
    return v4.ParameterizedInputShape(
        min=[sizes.get(d, case.min_size) for d in dims],
        step=[0 if d in sizes else case.step for d in dims],
    )


def _output_shape(v4, case: Case, i: int, dims: tuple[str, ...]) -> Any:
    """Implicit: ``shape = reference_shape * scale + 2 * offset``; or fixed (``case.fixed_output``)."""
    if case.fixed_output:
        space = int(case.test_size / case.output_scale) + case.output_offset
        return [{"batch": 1, "channel": case.out_channels[i]}.get(d, space) for d in dims]
    scale = [{"channel": 0.0, "batch": 1.0}.get(d, 1.0 / case.output_scale) for d in dims]
    offset = [
        case.out_channels[i] / 2 if d == "channel" else (0 if d == "batch" else case.output_offset / 2)
        for d in dims
    ]
    return v4.ImplicitOutputShape(reference_tensor=INPUT_IDS[0], scale=scale, offset=offset)


def describe(
    case: Case, work: Path, *, dims: tuple[str, ...], callable_name: str, kwargs: dict, outputs: list
) -> Any:
    """The case's ``v0_4.ModelDescr`` (files in ``work``)."""
    from bioimageio.spec.model import v0_4 as v4

    assert case.n_inputs == 1, "the 0.4 cases have one input"
    axes = axis_letters(dims)
    inputs = [
        v4.InputTensorDescr(
            name=INPUT_IDS[i],
            axes=axes,
            data_type=case.input_dtype,
            shape=_input_shape(v4, case, i, dims),
            preprocessing=[convert_op(v4, o, dims) for o in case.pre[i]],
        )
        for i in range(case.n_inputs)
    ]
    outs = [
        v4.OutputTensorDescr(
            name=OUTPUT_IDS[i],
            axes=axes,
            data_type="float32",
            shape=_output_shape(v4, case, i, dims),
            halo=[0 if d in ("batch", "channel") else case.halo for d in dims] if case.halo else None,
            postprocessing=[convert_op(v4, o, dims) for o in case.post[i]],
        )
        for i in range(case.n_outputs)
    ]
    from bioimageio.spec import ValidationContext

    with ValidationContext(root=work):  # the 0.4 architecture is a path relative to the package root
        return _model(v4, case, work, inputs, outs, callable_name, kwargs)


def _model(v4, case: Case, work: Path, inputs: list, outs: list, callable_name: str, kwargs: dict) -> Any:
    import torch

    version = v4.Version(torch.__version__.split("+")[0])
    weights = v4.WeightsDescr(
        pytorch_state_dict=v4.PytorchStateDictWeightsDescr(
            source=work / "weights.pt",
            architecture=v4.CallableFromFile(f"conformance_nets.py:{callable_name}"),
            architecture_sha256=hashlib.sha256((work / "conformance_nets.py").read_bytes()).hexdigest(),
            kwargs=kwargs,
            pytorch_version=version,
        ),
        torchscript=v4.TorchscriptWeightsDescr(
            source=work / "weights.torchscript", pytorch_version=version, parent="pytorch_state_dict"
        ),
        onnx=v4.OnnxWeightsDescr(source=work / "weights.onnx", opset_version=17, parent="pytorch_state_dict"),
    )
    return v4.ModelDescr(
        name=f"conformance {case.id}",
        description=f"Conformance case {case.id}: {'; '.join(case.features)}.",
        authors=[v4.Author(name="runner tests")],
        cite=[v4.CiteEntry(text="runner tests", url="https://example.com")],
        license="MIT",
        documentation=work / "README.md",
        timestamp="2024-01-01T00:00:00",
        inputs=inputs,
        outputs=outs,
        test_inputs=[work / f"test_{INPUT_IDS[i]}.npy" for i in range(case.n_inputs)],
        test_outputs=[work / f"test_{OUTPUT_IDS[i]}.npy" for i in range(case.n_outputs)],
        weights=weights,
    )

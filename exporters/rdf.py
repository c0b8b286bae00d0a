"""The model description, built with bioimageio.spec's classes (format 0.5), from an :class:`ExportContext`.

Inputs have explicit axis ids (``batch``, ``channel``, ``(z,) y, x``) and a parameterized size ``min +
n*step`` whose minimum leaves at least one pixel inside the halo; outputs are sized by reference to the input
with the halo that covers the network's receptive field. ``config`` carries ``runner`` (target code,
post-processor, recipe, validation metrics), ``bioimageio.reproducibility_tolerance`` and ``deepimagej``.
"""

from __future__ import annotations

import math

from exporters.options import INPUT_ID, OUTPUT_ID, ExportContext
from runner.errors import UserError

BOUNDED = {"sigmoid": (0.0, 1.0), "softmax": (0.0, 1.0), "tanh": (-1.0, 1.0)}
"""Output ranges the head's activation guarantees; identity/relu channels are left open."""
DEFAULT_CITATION = {
    "text": "Ronneberger, Fischer, Brox. U-Net: Convolutional Networks for Biomedical Image Segmentation. "
    "MICCAI 2015.",
    "doi": "10.1007/978-3-319-24574-4_28",
}


def input_size_rule(rule_min, rule_step, halo) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Per axis, the smallest valid size ``rule_min + k*step`` with ``size - 2*halo >= 1``, and the step."""
    mins = []
    for m, s, h in zip(rule_min, rule_step, halo, strict=True):
        k = max(0, math.ceil((2 * h + 1 - m) / s))
        mins.append(int(m + k * s))
    return tuple(mins), tuple(int(s) for s in rule_step)


def output_ranges(activations: list[str]) -> list[tuple[float | None, float | None]]:
    """``data.range`` per output channel from the activation that produces it."""
    return [BOUNDED.get(a, (None, None)) for a in activations]


def _axes(ctx: ExportContext, m5):
    rec = ctx.recipe
    in_names = ["raw"] if rec.input_channels == 1 else [f"raw{i}" for i in range(rec.input_channels)]
    inputs = [m5.BatchAxis(id="batch"), m5.ChannelAxis(id="channel", channel_names=in_names)]
    outputs = [
        m5.BatchAxis(id="batch"),
        m5.ChannelAxis(id="channel", channel_names=list(ctx.meta.channel_names)),
    ]
    for ax, lo, st, h in zip(ctx.spatial_axes, ctx.input_min, ctx.input_step, ctx.halo, strict=True):
        inputs.append(m5.SpaceInputAxis(id=ax, size=m5.ParameterizedSize(min=lo, step=st)))
        ref = m5.SizeReference(tensor_id=INPUT_ID, axis_id=ax)
        if h > 0:
            outputs.append(m5.SpaceOutputAxisWithHalo(id=ax, size=ref, halo=int(h)))
        else:
            outputs.append(m5.SpaceOutputAxis(id=ax, size=ref))
    return inputs, outputs


def _preprocessing(ctx: ExportContext, m5):
    spec = ctx.meta.preprocessing.bioimageio
    kwargs = dict(spec["kwargs"])
    if spec["id"] == "zero_mean_unit_variance":
        return [m5.ZeroMeanUnitVarianceDescr(kwargs=m5.ZeroMeanUnitVarianceKwargs(**kwargs))]
    if spec["id"] == "scale_range":
        return [m5.ScaleRangeDescr(kwargs=m5.ScaleRangeKwargs(**kwargs))]
    raise UserError(f"preprocessing {spec['id']!r} has no bioimage.io equivalent in this exporter")


def _output_description(ctx: ExportContext) -> str:
    names = list(ctx.meta.channel_names)
    shown = ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")
    code = ctx.meta.target_code
    text = f"{len(names)} channels of target code {code} ({shown}); instances: config.runner"
    return text[:128]


def _tensors(ctx: ExportContext, m5, FileDescr):
    in_axes, out_axes = _axes(ctx, m5)
    rec = ctx.recipe
    pre = ctx.meta.preprocessing.recipe
    inp = m5.InputTensorDescr(
        id=INPUT_ID,
        description=f"raw {rec.dims}D image, {rec.input_channels} channel(s); normalised inside the package "
        f"({pre['name']})"[:128],
        axes=in_axes,
        test_tensor=FileDescr(source=ctx.files["test_input"].name),
        sample_tensor=FileDescr(source=ctx.files["sample_input"].name),
        preprocessing=_preprocessing(ctx, m5),
    )
    ranges = output_ranges(list(ctx.meta.activations))
    out = m5.OutputTensorDescr(
        id=OUTPUT_ID,
        description=_output_description(ctx),
        axes=out_axes,
        test_tensor=FileDescr(source=ctx.files["test_output"].name),
        sample_tensor=FileDescr(source=ctx.files["sample_output"].name),
        data=[
            m5.IntervalOrRatioDataDescr(type="float32", range=r)
            if r != (None, None)
            else m5.IntervalOrRatioDataDescr(type="float32")
            for r in ranges
        ],
    )
    return inp, out


def _weights(ctx: ExportContext, m5):
    from exporters.weights import torch_version

    entries = {}
    for fmt, wf in ctx.weights.items():
        common = {"source": wf.path.name, "comment": wf.comment}
        if wf.parent is not None:
            common["parent"] = wf.parent
        if fmt == "pytorch_state_dict":
            arch = m5.ArchitectureFromFileDescr(
                source=wf.architecture.name, callable=wf.class_name, kwargs=dict(wf.kwargs)
            )
            entries[fmt] = m5.PytorchStateDictWeightsDescr(
                **common, architecture=arch, pytorch_version=torch_version()
            )
        elif fmt == "torchscript":
            entries[fmt] = m5.TorchscriptWeightsDescr(**common, pytorch_version=torch_version())
        else:
            entries[fmt] = m5.OnnxWeightsDescr(**common, opset_version=int(wf.opset))
    return m5.WeightsDescr(**entries)


def _people_and_refs(ctx: ExportContext, m5):
    exp = ctx.recipe.export
    authors = [
        m5.Author(**{k: v for k, v in a.model_dump().items() if v is not None}) for a in exp.authors
    ] or [m5.Author(name="bmz-runner developers")]
    cites = []
    for c in exp.citations:
        if c.doi is None and c.url is None:
            continue  # bioimage.io needs a DOI or URL; the text still appears in the README
        cites.append(m5.CiteEntry(**{k: v for k, v in c.model_dump().items() if v is not None}))
    if not any(c.doi == DEFAULT_CITATION["doi"] for c in exp.citations):
        cites.append(m5.CiteEntry(**DEFAULT_CITATION))
    return authors, cites


def description(ctx: ExportContext) -> str:
    """The recipe's export description, else its description, else one generated from the targets."""
    text = (ctx.recipe.export.description or ctx.recipe.description or "").strip()
    return text or (
        f"{ctx.ndim}D U-Net predicting the {ctx.meta.target_code} target channels "
        f"({', '.join(ctx.meta.channel_names)}) for instance segmentation; instances come from the "
        f"post-processor {ctx.recipe.postprocessing.name} (config.runner.postprocessing)."
    )


def tags(ctx: ExportContext) -> list[str]:
    """The recipe's tags plus what the package is: dimensionality, task, architecture, framework."""
    auto = [f"{ctx.ndim}d", "instance-segmentation", "unet", "pytorch", "bmz-runner"]
    seen: list[str] = []
    for t in [*ctx.recipe.export.tags, *auto]:
        if t.lower() not in (s.lower() for s in seen):
            seen.append(t)
    return seen


def build_model_descr(ctx: ExportContext, config: dict):
    """The ``ModelDescr`` (latest 0.5 format) of the package in ``ctx.folder``; raises :class:`UserError`.

    ``config`` is the ``config`` mapping (see :mod:`exporters.config`). File hashes are computed from the
    files in the build folder. Without ``documentation``/``cover`` in ``ctx.files`` (the provisional
    description the validation metrics are computed with) those fields are left out.
    """
    from bioimageio.spec import ValidationContext
    from bioimageio.spec.common import FileDescr
    from bioimageio.spec.model import v0_5 as m5
    from pydantic import ValidationError

    from exporters.offline import known_github_users

    exp = ctx.recipe.export
    users = [a.github_user for a in exp.authors if a.github_user]
    try:
        with known_github_users(users), ValidationContext(root=ctx.folder, perform_io_checks=True):
            inp, out = _tensors(ctx, m5, FileDescr)
            authors, cites = _people_and_refs(ctx, m5)
            return m5.ModelDescr(
                name=ctx.name,
                description=description(ctx),
                authors=authors,
                cite=cites,
                license=exp.license,
                tags=tags(ctx),
                documentation=_file(ctx, "documentation", FileDescr),
                covers=[_file(ctx, "cover", FileDescr)] if "cover" in ctx.files else [],
                inputs=[inp],
                outputs=[out],
                weights=_weights(ctx, m5),
                # pydantic validates the plain mapping into the spec's Config model (typed as Config only)
                config=config,  # type: ignore[arg-type]
            )
    except ValidationError as exc:
        raise UserError(f"the package description is invalid: {_errors(exc)}", path=ctx.run.path) from None


def _file(ctx: ExportContext, role: str, FileDescr):
    return FileDescr(source=ctx.files[role].name) if role in ctx.files else None


def _errors(exc, limit: int = 4) -> str:
    parts = []
    for err in exc.errors()[:limit]:
        loc = ".".join(str(p) for p in err.get("loc", ()))
        parts.append(f"{loc}: {err.get('msg')}" if loc else str(err.get("msg")))
    return "; ".join(parts)

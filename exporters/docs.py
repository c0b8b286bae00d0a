"""The package's ``README.md``: what the model does, how to run it, and a ``# Validation`` section.

bioimage.io asks for a '# Validation' section describing how to validate the model quantitatively on unseen
data; ours gives the data, the numbers (from :mod:`exporters.evaluation`) and the command reproducing them.
"""

from __future__ import annotations

import math

from exporters.options import ExportContext
from runner.contracts import TunedOn
from runner.safety.paths import scrub_text


def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, float) and value.is_integer() and abs(value) >= 1:
        return str(int(value))
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _channels(ctx: ExportContext) -> list[str]:
    from exporters.rdf import output_ranges

    specs = {s["name"]: s for s in ctx.meta.channel_specs}
    acts = list(ctx.meta.activations)
    lines = ["| channel | activation | output range | meaning |", "|---|---|---|---|"]
    for name, act, rng in zip(ctx.meta.channel_names, acts, output_ranges(acts), strict=True):
        spec = specs.get(name, {})
        shown = "unbounded" if rng == (None, None) else f"[{rng[0]:g}, {rng[1]:g}]"
        if spec.get("value_range") and rng == (None, None):
            lo, hi = spec["value_range"]
            shown += f" (trained towards [{lo:g}, {hi:g}])"
        meaning = spec.get("description") or ("class probability" if act == "softmax" else "")
        lines.append(f"| {name} | {act} | {shown} | {meaning} |")
    return lines


def _input(ctx: ExportContext) -> list[str]:
    pre = ctx.meta.preprocessing.recipe
    kw = ", ".join(f"{k}={v}" for k, v in pre.items() if k != "name")
    axes = "".join(ctx.spatial_axes)
    norm = ctx.recipe.model.norm
    caveat = (
        [
            f"- the network uses `{norm}` normalisation (statistics per tile): tiled outputs differ slightly "
            "from whole-image outputs; prefer large tiles"
        ]
        if norm in ("instance", "group")
        else []
    )
    return [
        f"- axes `bc{axes}` (batch, channel, {', '.join(ctx.spatial_axes)}), "
        f"{ctx.recipe.input_channels} channel(s), float32",
        f"- valid sizes per axis ({axes}): `min + n*step` with min {list(ctx.input_min)} and step "
        f"{list(ctx.input_step)}; output sized like the input",
        f"- halo {list(ctx.halo)} px per side (covers the receptive field {ctx.meta.receptive_field}): "
        "tiles that crop it reproduce the whole-image output",
        f"- preprocessing inside the package: `{pre['name']}` ({kw}), "
        "statistics of the whole image per channel",
        *caveat,
    ]


def _usage(ctx: ExportContext) -> list[str]:
    pp = ctx.recipe.postprocessing
    params = ", ".join(f"{k}={v}" for k, v in pp.params.items()) or "defaults"
    return [
        "## How to use",
        "",
        "Instances from a folder of images with bmz-runner (tiled, CPU or GPU):",
        "",
        "```bash",
        f"runner predict {ctx.package_name} --input images/ --output results/",
        "```",
        "",
        f"This runs the network, then the post-processor `{pp.name}` ({params}) stored under "
        "`config.runner.postprocessing`. Any bioimage.io consumer (bioimageio.core / ilastik, deepImageJ, "
        "QuPath) runs the network itself; the outputs are the channels above.",
        "",
        "```bash",
        f"bioimageio test {ctx.package_name}         # reproduce the test outputs",
        f"runner test {ctx.package_name}             # the same, offline, plus bmz-runner's own check",
        "```",
    ]


def _validation(ctx: ExportContext) -> list[str]:
    rec = ctx.recipe
    return validation_section(
        ctx.validation,
        package_name=ctx.package_name,
        postprocessing=(rec.postprocessing.name, dict(rec.postprocessing.params)),
        voxel_size=rec.data.voxel_size,
        notes=rec.export.validation_notes,
    )


def _threshold_table(val) -> list[str]:
    from exporters.evaluation import TABLE_ROWS

    rows = {round(float(r["iou"]), 3): r for r in val.per_threshold}
    ious = [t for t in (0.5, 0.6, 0.7, 0.8, 0.9) if t in rows]
    if not ious:
        return []
    lines = [
        "| IoU threshold | " + " | ".join(f"{t:g}" for t in ious) + " | mean 0.5:0.9 |",
        "|---|" + "---|" * (len(ious) + 1),
    ]
    for key, label in TABLE_ROWS:
        values = [float(rows[t][key]) for t in ious]
        lines.append(
            f"| {label} | " + " | ".join(f"{v:.3f}" for v in values) + f" | {sum(values) / len(values):.3f} |"
        )
    return [*lines, ""]


def validation_section(
    val,
    *,
    package_name: str,
    postprocessing: tuple[str, dict],
    voxel_size=None,
    notes: str | None = None,
    tuned_on: TunedOn | None = None,
) -> list[str]:
    """The README's ``# Validation`` section for a :class:`exporters.evaluation.ValidationReport`.

    ``voxel_size``: the package's (``config.runner.voxel_size``), shown in the reproduce command."""
    src = val.source
    role = "validation" if val.role == "validation" else "training (the run had no validation images)"
    short = [n if len(n) <= 20 else n[:16] + "..." for n in val.names[:3]]
    names = ", ".join(short) + (
        f", ... ({len(val.names)} listed in config.runner)" if len(val.names) > 3 else ""
    )
    pp_name, pp_params = postprocessing
    tuned = _tuned_lines(tuned_on, src) if tuned_on else []
    lines = [
        "# Validation",
        "",
        f"**Data.** {val.n_images} {role} image(s) from `{src}` ({names}), never used for the weight "
        "updates"
        + ("" if val.role == "validation" else " - here they were, so the numbers are optimistic")
        + ".",
        "",
        f"**Method.** This package was run on each image the way `runner predict` runs it ({val.weights} "
        "weights, the rdf's preprocessing on the whole image, tiles cropped by the halo), the outputs were "
        f"turned into instances by `{pp_name}` with the packaged params and matched to the labels with "
        "bmz-runner's metrics (StarDist-style optimal matching at IoU thresholds; counts pooled over the "
        "images).",
        "",
        *tuned,
        *_threshold_table(val),
        "| metric | value |",
        "|---|---|",
    ]
    for key, value in val.metrics.items():
        lines.append(f"| {val.labels.get(key, key)} | {_fmt(value)} |")
    if notes:
        lines += ["", notes.strip()]
    res_arg = f" --resolution {','.join(f'{r:g}' for r in voxel_size)}" if voxel_size else ""
    if tuned_on and tuned_on.tta:
        res_arg += " --tta"
    lines += [
        "",
        "**Reproduce** (the command prints the same pooled accuracy, F1, avAP and AJI):",
        "",
        "```bash",
        f"runner predict {package_name} --input {src}/x --output val_results/ --gt {src}/y{res_arg}",
        "```",
    ]
    return lines


def _tuned_lines(tuned_on: TunedOn, src: str) -> list[str]:
    """How the post-processing params were chosen: on these images (optimistic) or on others."""
    scores = (
        f"metric {tuned_on.metric}: {_fmt(tuned_on.default_score)} with the previous params, "
        f"{_fmt(tuned_on.score)} tuned; {tuned_on.n_trials} combinations tried"
    )
    if str(tuned_on.data) == str(src):
        text = (
            f"**Post-processing params** were tuned on these images by `runner tune` ({scores}), so the "
            "numbers below are optimistic for unseen data."
        )
    else:
        held = tuned_on.held_out
        kind = (
            "image(s)"
            if held is None
            else "training image(s) held back from the weight updates"
            if held
            else "training image(s) (the weights were trained on them too; they are only kept apart from val)"
        )
        text = (
            f"**Post-processing params** were tuned by `runner tune` on {len(tuned_on.images)} {kind} of "
            f"`{tuned_on.data}` ({scores}; names in `config.runner.tuned_on`), never on the images below: "
            "the numbers come from params that did not see them."
        )
    return [text, ""]


def _training(ctx: ExportContext) -> list[str]:
    meta, rec = ctx.meta, ctx.recipe
    best, data = meta.best, meta.data
    line = (
        f"- recipe `{rec.name}` ({rec.dims}D U-Net, depth {rec.model.depth}, {rec.model.features} features)"
    )
    out = [
        "## Training",
        "",
        line,
        f"- checkpoint `{ctx.options.checkpoint}`: iteration {meta.iteration} of {meta.total_iterations}"
        f"; best {best.metric} {_fmt(best.value)} at {best.iteration}",
        f"- data: {len(data.train_images)} training image(s) from "
        f"`{scrub_text(str(data.train)) if data.train is not None else '?'}`",
    ]
    if rec.export.training_data:
        out.append(f"- training data: {rec.export.training_data}")
    out.append("- the resolved recipe is under `config.runner.recipe`")
    return out


def _test_tensor(ctx: ExportContext) -> list[str]:
    s = ctx.sample
    pad = f", reflection-padded by {list(s.padded)} px" if any(s.padded) else ""
    return [
        "## Test tensors",
        "",
        f"`test_input.npy` is a {list(s.labels.shape)} crop at {list(s.origin)} of the {ctx.validation.role} "
        f"image `{s.name}`{pad}; `test_output.npy` is the network's output for it. Weights: "
        + ", ".join(
            f"`{k}`" + (f" (from {w.parent})" if w.parent else " (original)") for k, w in ctx.weights.items()
        )
        + ".",
    ]


def readme_text(ctx: ExportContext) -> str:
    """The whole README."""
    rec = ctx.recipe
    from exporters.rdf import description

    desc = description(ctx)
    cites = [
        f"- {c.text}" + (f" doi:{c.doi}" if c.doi else f" {c.url}" if c.url else "")
        for c in rec.export.citations
    ]
    authors = ", ".join(a.name for a in rec.export.authors) or "bmz-runner developers"
    lines = [
        f"# {ctx.name}",
        "",
        desc,
        "",
        "![cover](cover.png)",
        "",
        "## Outputs",
        "",
        *_channels(ctx),
        "",
        "## Input",
        "",
        *_input(ctx),
        "",
        *_usage(ctx),
        "",
        *_training(ctx),
        "",
        *_test_tensor(ctx),
        "",
        *_validation(ctx),
        "",
        "## Authors, license, citations",
        "",
        f"Authors: {authors}. License: {rec.export.license}.",
        "",
        *(cites or ["- see `cite` in rdf.yaml"]),
        "",
    ]
    return "\n".join(lines)

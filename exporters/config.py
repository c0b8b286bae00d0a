"""The rdf's ``config``: ``runner`` (how to get instances), ``bioimageio`` (tolerances), ``deepimagej``.

``config.runner`` is what ``runner predict`` reads (``targets``, ``postprocessing``) plus the provenance a
reader needs to trust and reproduce the model: the resolved training recipe, the checkpoint, the validation
metrics and where the test tensor was cut from.
"""

from __future__ import annotations

import math

from exporters.options import INPUT_ID, OUTPUT_ID, ExportContext
from runner.contracts import RunnerConfig, dump_runner_config
from runner.safety.paths import shareable_name


def _plain(value):
    """JSON/YAML-safe copy: NaN/inf become None, tuples lists."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def runner_config(ctx: ExportContext) -> RunnerConfig:
    """``config.runner`` (validated: the exporter writes only what predict/tune/test can read back)."""
    import runner

    rec, meta = ctx.recipe, ctx.meta
    val = ctx.validation
    sample = ctx.sample
    data = meta.data
    plain = _plain(
        {
            "format": RunnerConfig.current_format(),
            "version": runner.__version__,
            "targets": {
                "code": meta.target_code,
                "channels": meta.channel_specs,
                "options": rec.targets.options.model_dump(mode="json"),
                "n_classes": rec.targets.n_classes,
            },
            "channel_names": list(meta.channel_names),
            "postprocessing": {"name": rec.postprocessing.name, "params": dict(rec.postprocessing.params)},
            "resolution": rec.targets.options.resolution,
            "voxel_size": None if rec.data.voxel_size is None else list(rec.data.voxel_size),
            "input_tensor": INPUT_ID,
            "output_tensor": OUTPUT_ID,
            "size_rule": meta.size_rule.model_dump(mode="json"),
            "halo": list(ctx.halo),
            "receptive_field": meta.receptive_field,
            "training": {
                "checkpoint": ctx.options.checkpoint,
                "iteration": meta.iteration,
                "total_iterations": meta.total_iterations,
                "best": meta.best.model_dump(mode="json"),
                "data_dir": shareable_name(data.data_dir, keep=1) if data.data_dir else None,
                "n_train_images": len(data.train_images),
                "n_val_images": len(data.val_images),
                "versions": meta.versions,
            },
            "validation": None
            if val is None
            else {
                "role": val.role,
                "source": shareable_name(val.source),
                "n_images": val.n_images,
                "images": val.names,
                "metrics": val.metrics,
                "weights": val.weights,
                "method": "runner predict (tiled, package halo), post-processor above, "
                "runner.metrics pooled over the images",
            },
            "test_tensor": {
                "image": sample.name,
                "origin": list(sample.origin),
                "shape": list(sample.labels.shape),
                "padded": list(sample.padded),
            },
            "recipe": rec.model_dump(mode="json"),
        }
    )
    return RunnerConfig.model_validate(plain)


def bioimageio_config(ctx: ExportContext) -> dict:
    """``config.bioimageio``: one reproducibility tolerance for every output and weight format."""
    o = ctx.options
    return {
        "reproducibility_tolerance": [
            {
                "relative_tolerance": float(o.relative_tolerance),
                "absolute_tolerance": float(o.absolute_tolerance),
                "mismatched_elements_per_million": float(o.mismatched_elements_per_million),
            }
        ]
    }


def deepimagej_config(ctx: ExportContext) -> dict:
    """``config.deepimagej``: tiling allowed (deepImageJ assumes false when the key is missing)."""
    sample = ctx.sample
    size = " x ".join(str(s) for s in reversed((*sample.labels.shape,)))
    return {
        "pyramidal_model": False,
        "allow_tiling": True,
        "model_keys": None,
        "prediction": {"preprocess": [{"spec": None}], "postprocess": [{"spec": None}]},
        "test_information": {
            "inputs": [
                {
                    "name": ctx.files["test_input"].name,
                    "size": f"{size} x {sample.image.shape[0]}",
                    "pixel_size": {a: 1.0 for a in ctx.spatial_axes},
                }
            ],
            "outputs": [
                {
                    "name": ctx.files["test_output"].name,
                    "size": f"{size} x {sample.output.shape[0]}",
                    "type": "image",
                }
            ],
            "memory_peak": None,
            "runtime": None,
        },
    }


def package_config(ctx: ExportContext) -> dict:
    """The whole ``config`` mapping."""
    return {
        "bioimageio": bioimageio_config(ctx),
        "runner": dump_runner_config(runner_config(ctx)),
        "deepimagej": deepimagej_config(ctx),
    }

"""Initial weights of a new training run (``runner train --init-from``): fine-tuning from earlier weights.

The source may be a run folder (its best checkpoint, else the last), a ``.pt`` checkpoint written by
``runner train``, or a bioimage.io package (zip, folder or rdf) with ``pytorch_state_dict`` weights. Only
tensors are read (``torch.load(..., weights_only=True)``): nothing of a package's Python code runs, and the
network is always the recipe's own architecture, so the weights must fit it exactly::

    >>> state, origin = read_initial_weights("zoo_packages/unet3d_bcd_nuclei_aniso.zip")
    >>> load_initial_weights(model, state, origin)      # UserError naming the first mismatch
"""

from __future__ import annotations

from pathlib import Path

import torch

from runner.errors import UserError

PACKAGE_SUFFIXES = (".zip", ".yaml", ".yml")


def read_initial_weights(source: str | Path) -> tuple[dict[str, torch.Tensor], str]:
    """The state dict found at ``source`` and a phrase naming where it came from."""
    from runner.training.checkpoints import find_checkpoint, load_checkpoint

    source = Path(source)
    if not source.exists():
        raise UserError(
            "--init-from: not found",
            path=source,
            hint="give a run folder, a .pt checkpoint or a model package",
        )
    if source.is_dir() and (source / "checkpoints").is_dir():
        ckpt_path = find_checkpoint(source)
        return load_checkpoint(ckpt_path)["model_state"], f"checkpoint {ckpt_path}"
    if source.is_file() and source.suffix.lower() == ".pt":
        return load_checkpoint(source)["model_state"], f"checkpoint {source}"
    if source.is_dir() or source.suffix.lower() in PACKAGE_SUFFIXES:
        return _package_state(source), f"package {source}"
    raise UserError(
        "--init-from: not a run folder, .pt checkpoint or model package",
        path=source,
        hint="give a run folder (with checkpoints/), a .pt file or a bioimage.io package (.zip, folder, rdf)",
    )


def _package_state(source: Path) -> dict[str, torch.Tensor]:
    from runner.inference.package import load_package
    from runner.safety.trust import describe_load_error

    pkg = load_package(source)
    try:
        if "pytorch_state_dict" not in pkg.weight_formats:
            raise UserError(
                "--init-from: the package has no pytorch_state_dict weights "
                f"(it has {', '.join(pkg.weight_formats) or 'none'})",
                path=source,
                hint="fine-tune from a package exported by runner export, or from a run folder",
            )
        entry = pkg.weights_entry("pytorch_state_dict")
        path = pkg.file(entry.source, sha256=entry.sha256, what="pytorch_state_dict weights")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # a pickle with code, truncated, not a torch file
            raise UserError(
                f"--init-from: cannot read the state dict ({describe_load_error(exc)})", path=source
            ) from None
    finally:
        pkg.close()
    if isinstance(state, dict) and "model_state" in state:
        state = state["model_state"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError("--init-from: the package's state dict holds more than tensors", path=source)
    return state


def load_initial_weights(model: torch.nn.Module, state: dict[str, torch.Tensor], origin: str) -> None:
    """Copy ``state`` into ``model``: every tensor must exist with the same shape, else one line names one."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    extra = [k for k in state if k not in own]
    wrong = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or extra or wrong:
        if wrong:
            k = wrong[0]
            what = f"{k} is {tuple(state[k].shape)} there, {tuple(own[k].shape)} in the recipe's model"
        elif missing:
            what = f"{missing[0]} is missing there"
        else:
            what = f"{extra[0]} is not in the recipe's model"
        n = len(missing) + len(extra) + len(wrong)
        raise UserError(
            f"--init-from: the weights of {origin} do not fit the recipe's model "
            f"({n} tensor(s) differ; {what})",
            hint="use a recipe with the same model section (features, depth, channels, target code)",
        )
    model.load_state_dict(state, strict=True)

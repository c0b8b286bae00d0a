"""Format 0.4 (and 0.3, which bioimageio.spec reads as 0.4) model descriptions read natively.

bioimageio.spec converts 0.4 descriptions to 0.5, and :func:`runner.inference.package.load_package` uses the
converted one when it can. The converter refuses some descriptions that bioimageio.core runs, e.g. a fixed
output shape with a halo ("output axis with halo and fixed size not allowed"). For those the 0.4 description
itself is read here into the same :class:`TensorInfo` objects:

- ``shape: [1, 1, 512, 512]`` (inputs): fixed sizes; ``shape: {min, step}``: ``min + n*step`` (``step: 0``
  fixed);
- ``shape: {reference_tensor, scale, offset}`` (outputs): ``size = reference * scale + 2 * offset`` along
  each axis (a reference for space axes, a fixed count for channels);
- a fixed output shape: a reference to the input's axis of the same name with the size difference as offset
  (the model crops by that much), so images of other valid sizes and tiles still work;
- ``halo``: per output axis, as in 0.5.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

from runner import safety
from runner.inference.sizes import SizeRule

AXIS_IDS = {"b": "batch", "c": "channel", "i": "index", "t": "time"}
AXIS_TYPES = {
    "b": "batch",
    "c": "channel",
    "i": "index",
    "t": "time",
    "x": "space",
    "y": "space",
    "z": "space",
}


def is_v04(descr: Any) -> bool:
    """True for a ``bioimageio.spec.model.v0_4.ModelDescr``."""
    from bioimageio.spec.model import v0_4

    return isinstance(descr, v0_4.ModelDescr)


def _letters(t: Any) -> str:
    return str(t.axes)


def _input_rules(t: Any) -> list[SizeRule]:
    from bioimageio.spec.model import v0_4

    rules = []
    for i, letter in enumerate(_letters(t)):
        if isinstance(t.shape, v0_4.ParameterizedInputShape):
            lo, step = int(t.shape.min[i]), int(t.shape.step[i])
            if letter == "b":
                rules.append(SizeRule("fixed", size=1) if step == 0 and lo == 1 else SizeRule("any"))
            else:
                rules.append(
                    SizeRule("fixed", size=lo) if step == 0 else SizeRule("parameterized", min=lo, step=step)
                )
        else:
            size = int(t.shape[i])
            rules.append(SizeRule("any") if letter == "b" and size != 1 else SizeRule("fixed", size=size))
    return rules


def _output_rules(t: Any, inputs: dict[str, tuple[str, list[SizeRule]]]) -> list[SizeRule]:
    from bioimageio.spec.model import v0_4

    letters = _letters(t)
    shape = t.shape
    rules = []
    if isinstance(shape, v0_4.ImplicitOutputShape):
        ref = str(shape.reference_tensor)
        ref_letters, ref_rules = inputs[ref]
        for i, letter in enumerate(letters):
            scale, offset = float(shape.scale[i] or 0.0), float(shape.offset[i] or 0.0)
            if letter == "b":
                rules.append(SizeRule("any"))
            elif AXIS_TYPES.get(letter) == "space" and scale and letter in ref_letters:
                rules.append(
                    SizeRule(
                        "reference",
                        tensor=ref,
                        axis=letter,
                        ratio=Fraction(scale).limit_denominator(1000),
                        offset=int(round(2 * offset)),
                    )
                )
            else:
                ref_rule = ref_rules[ref_letters.index(letter)] if letter in ref_letters else None
                ref_size = ref_rule.size if ref_rule is not None and ref_rule.kind == "fixed" else 0
                rules.append(SizeRule("fixed", size=int(round((ref_size or 0) * scale + 2 * offset))))
        return rules
    primary = next(iter(inputs.items()), None)
    for i, letter in enumerate(letters):
        size = int(shape[i])
        if letter == "b":
            rules.append(SizeRule("any"))
            continue
        if AXIS_TYPES.get(letter) == "space" and primary is not None and letter in primary[1][0]:
            in_rule = primary[1][1][primary[1][0].index(letter)]
            if in_rule.kind == "fixed" and in_rule.size is not None:
                rules.append(
                    SizeRule("reference", tensor=primary[0], axis=letter, offset=size - in_rule.size)
                )
                continue
        rules.append(SizeRule("fixed", size=size))
    return rules


def tensor_infos(descr: Any):
    """``(inputs, outputs)`` as :class:`runner.inference.package.TensorInfo` from a 0.4 description."""
    from runner.inference.package import AxisInfo, TensorInfo

    inputs, input_rules = [], {}
    for t in descr.inputs:
        rules = _input_rules(t)
        input_rules[str(t.name)] = (_letters(t), rules)
        axes = tuple(
            AxisInfo(id=AXIS_IDS.get(letter, letter), type=AXIS_TYPES.get(letter, "space"), rule=rule)
            for letter, rule in zip(_letters(t), rules, strict=True)
        )
        inputs.append(TensorInfo(id=str(t.name), axes=axes, description=str(t.description or "")))
    outputs = []
    for t in descr.outputs:
        rules = _output_rules(t, input_rules)
        halo = list(t.halo) if getattr(t, "halo", None) else [0] * len(rules)
        axes = tuple(
            AxisInfo(
                id=AXIS_IDS.get(letter, letter), type=AXIS_TYPES.get(letter, "space"), rule=rule, halo=int(h)
            )
            for letter, rule, h in zip(_letters(t), rules, halo, strict=True)
        )
        outputs.append(TensorInfo(id=str(t.name), axes=axes, description=str(t.description or "")))
    return tuple(inputs), tuple(outputs)


def test_tensor_source(descr: Any, tensor_id: str) -> Any:
    """The 0.4 ``test_inputs`` / ``test_outputs`` entry of tensor ``tensor_id`` (None when absent)."""
    for tensors, files in ((descr.inputs, descr.test_inputs), (descr.outputs, descr.test_outputs)):
        for i, t in enumerate(tensors):
            if str(t.name) == tensor_id:
                return files[i] if i < len(files) else None
    return None


def load_native(rdf: Path):
    """The description in its own format 0.4 (None when bioimageio.spec finds it invalid there too)."""
    from bioimageio.spec import InvalidDescr, load_description

    try:
        descr = load_description(rdf, format_version="discover", perform_io_checks=False)
    except Exception:  # the converted description's error is the one reported
        return None
    if isinstance(descr, InvalidDescr) or not is_v04(descr) or getattr(descr, "type", None) != "model":
        return None
    return descr


def converter_refuses(rdf: Path) -> bool:
    """Whether bioimageio.spec's 0.4 -> 0.5 converter refuses the description for a reason runner reads
    natively: an output with a fixed shape and a halo ("output axis with halo and fixed size not allowed")."""
    data = safety.load_yaml(rdf, what="model description")
    for out in (data.get("outputs") or []) if isinstance(data, dict) else []:
        if isinstance(out, dict) and isinstance(out.get("shape"), list) and any(out.get("halo") or []):
            return True
    return False

"""Names of the operations that make a network's outputs depend on its whole input, read from its graph.

The probes of :mod:`runner.inference.halo` decide *whether* a network is global; this module only names the
likely cause for the user ("it has instance normalisation"), from the ONNX graph's node types, the TorchScript
graph's ops, or the module types of a PyTorch model. Layer normalisation is not listed: in convolutional
networks it usually normalises over channels only, which is local.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

PLAIN = {
    "instance_norm": "instance normalisation",
    "group_norm": "group normalisation",
    "global_pool": "global pooling",
    "attention": "attention",
}
_ONNX = {
    "InstanceNormalization": "instance_norm",
    "GroupNormalization": "group_norm",
    "GlobalAveragePool": "global_pool",
    "GlobalMaxPool": "global_pool",
    "GlobalLpPool": "global_pool",
    "Attention": "attention",
    "MultiHeadAttention": "attention",
}
_ATEN = {
    "aten::instance_norm": "instance_norm",
    "aten::group_norm": "group_norm",
    "aten::adaptive_avg_pool1d": "global_pool",
    "aten::adaptive_avg_pool2d": "global_pool",
    "aten::adaptive_avg_pool3d": "global_pool",
    "aten::adaptive_max_pool2d": "global_pool",
    "aten::adaptive_max_pool3d": "global_pool",
    "aten::scaled_dot_product_attention": "attention",
    "aten::_native_multi_head_attention": "attention",
}
_MODULES = {
    "InstanceNorm1d": "instance_norm",
    "InstanceNorm2d": "instance_norm",
    "InstanceNorm3d": "instance_norm",
    "GroupNorm": "group_norm",
    "AdaptiveAvgPool2d": "global_pool",
    "AdaptiveAvgPool3d": "global_pool",
    "AdaptiveMaxPool2d": "global_pool",
    "AdaptiveMaxPool3d": "global_pool",
    "MultiheadAttention": "attention",
}


def global_ops_in(network: Any) -> list[str]:
    """Plain names of the global operations found in ``network`` (an ONNX file path or a torch module), in
    :data:`PLAIN` order; empty when none is found or the graph cannot be read."""
    try:
        found = _onnx_ops(Path(network)) if isinstance(network, (str, Path)) else _torch_ops(network)
    except Exception:  # naming is a courtesy: a graph we cannot read names nothing
        return []
    return [PLAIN[k] for k in PLAIN if k in found]


def _onnx_ops(path: Path) -> set[str]:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    found = {_ONNX[n.op_type] for n in model.graph.node if n.op_type in _ONNX}
    for fn in model.functions:  # ops exported as local functions (e.g. group norm in newer opsets)
        found |= {_ONNX[n.op_type] for n in fn.node if n.op_type in _ONNX}
    return found


def _torch_ops(module: Any) -> set[str]:
    found = {_MODULES[type(m).__name__] for m in module.modules() if type(m).__name__ in _MODULES}
    graph = getattr(module, "inlined_graph", None)
    if graph is not None:
        found |= {_ATEN[n.kind()] for n in _nodes(graph) if n.kind() in _ATEN}
    return found


def _nodes(block: Any):
    for node in block.nodes():
        yield node
        for sub in node.blocks():
            yield from _nodes(sub)

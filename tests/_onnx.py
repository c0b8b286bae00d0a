"""Export a network to ONNX in memory (opset 18, the classic exporter, dynamic batch and spatial axes) and run
it with onnxruntime on the CPU."""

from __future__ import annotations

import io
import warnings

import numpy as np
import torch


def onnx_outputs(net: torch.nn.Module, example: torch.Tensor, inputs: torch.Tensor) -> np.ndarray:
    """Export ``net`` traced on ``example``, then run the ONNX model on ``inputs``."""
    import onnxruntime as ort

    buf = io.BytesIO()
    axes = {0: "b", **{i + 2: f"s{i}" for i in range(example.ndim - 2)}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net,
            (example,),
            buf,
            dynamo=False,
            opset_version=18,
            input_names=["input"],
            output_names=["output"],
            dynamic_axes={"input": axes, "output": axes},
        )
    sess = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"input": inputs.numpy()})[0]

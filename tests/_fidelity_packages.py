"""Small packages shaped like the ones issue 12 found runner changing silently (built with bioimageio.spec).

- :func:`torchem_like`: a U-Net with instance normalisation whose output is at half resolution
  (``scale: 2.0``), no declared halo, parameterized size;
- :func:`fixed_with_halo`: a fixed-size model (``size`` x ``size``) with an output halo;
- :func:`two_in_two_out`: two inputs, two outputs, parameterized size, no halo;
- :func:`v04_fixed_with_halo`: format 0.4, fixed input shape and an output halo (which bioimageio.spec's
  0.4 -> 0.5 converter refuses).

Weights are TorchScript (traced) and/or ONNX; test tensors are the network's own outputs on the test inputs
after the rdf's processing, computed in numpy/torch here (no padding, like ``bioimageio test``).
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np


def _torch():
    import torch

    return torch


def _nets():
    torch = _torch()
    nn = torch.nn

    class InstanceNormUNet(nn.Module):
        """conv-IN-relu, pool, conv-IN-relu, upsample, concat, conv, avgpool x2 (half-resolution output)."""

        def __init__(self) -> None:
            super().__init__()
            self.enc = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.InstanceNorm2d(8), nn.ReLU())
            self.mid = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.InstanceNorm2d(8), nn.ReLU())
            self.pool, self.up = nn.MaxPool2d(2), nn.Upsample(scale_factor=2.0, mode="nearest")
            self.dec = nn.Conv2d(16, 2, 3, padding=1)
            self.downsample = nn.AvgPool2d(2)

        def forward(self, x):
            e = self.enc(x)
            return self.downsample(self.dec(torch.cat([e, self.up(self.mid(self.pool(e)))], dim=1)))

    class LocalNet(nn.Module):
        """Three 3x3 convs (receptive field radius 3), zero padding at the input border."""

        def __init__(self, cin: int = 1, cout: int = 1) -> None:
            super().__init__()
            self.body = nn.Sequential(
                nn.Conv2d(cin, 8, 3, padding=1),
                nn.ReLU(),
                nn.Conv2d(8, 8, 3, padding=1),
                nn.ReLU(),
                nn.Conv2d(8, cout, 3, padding=1),
            )

        def forward(self, x):
            return self.body(x)

    class TwoInTwoOut(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = LocalNet(2, 3)

        def forward(self, a, b):
            y = self.net(torch.cat([a, b], dim=1))
            return y[:, :2], y[:, 2:]

    return InstanceNormUNet, LocalNet, TwoInTwoOut


def _zmuv(x: np.ndarray) -> np.ndarray:
    axes = tuple(range(2, x.ndim))
    x64 = x.astype(np.float64)
    return ((x64 - x64.mean(axis=axes, keepdims=True)) / (x64.std(axis=axes, keepdims=True) + 1e-6)).astype(
        np.float32
    )


def _run(net, xs: list[np.ndarray]) -> list[np.ndarray]:
    torch = _torch()
    with torch.no_grad():
        out = net(*[torch.from_numpy(x) for x in xs])
    return [o.numpy() for o in (out if isinstance(out, tuple) else (out,))]


def _weights(v5, work: Path, net, xs: list[np.ndarray], in_ids, out_ids, *, onnx: bool = True):
    torch = _torch()
    version = v5.Version(torch.__version__.split("+")[0])
    examples = tuple(torch.from_numpy(x) for x in xs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(net, examples, check_trace=False)
        traced.save(str(work / "weights.torchscript"))
    entries = {
        "torchscript": v5.TorchscriptWeightsDescr(
            source=work / "weights.torchscript", pytorch_version=version
        )
    }
    if onnx:
        dyn = {0: "b", 2: "y", 3: "x"}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                net,
                examples,
                str(work / "weights.onnx"),
                input_names=list(in_ids),
                output_names=list(out_ids),
                dynamic_axes={n: dyn for n in (*in_ids, *out_ids)},
                opset_version=17,
                dynamo=False,
            )
        entries["onnx"] = v5.OnnxWeightsDescr(
            source=work / "weights.onnx", opset_version=17, parent="torchscript"
        )
    return entries


def _common(v5, work: Path, name: str) -> dict:
    (work / "README.md").write_text(f"# {name}\n")
    return dict(
        name=name,
        description=f"{name}, built by runner's fidelity tests.",
        authors=[v5.Author(name="runner tests")],
        cite=[v5.CiteEntry(text="runner tests", url="https://example.com")],
        license="MIT",
        documentation=v5.FileDescr(source=work / "README.md"),
    )


def _save(descr, folder: Path, work: Path) -> Path:
    from bioimageio.spec import save_bioimageio_package_as_folder

    if folder.exists():
        shutil.rmtree(folder)
    save_bioimageio_package_as_folder(descr, output_path=folder)
    shutil.rmtree(work)
    return folder


def _in_axes(v5, channels: int, size):
    return [
        v5.BatchAxis(),
        v5.ChannelAxis(channel_names=[v5.Identifier(f"c{i}") for i in range(channels)]),
        v5.SpaceInputAxis(id=v5.AxisId("y"), size=size),
        v5.SpaceInputAxis(id=v5.AxisId("x"), size=size),
    ]


def _out_axes(v5, channels: int, ref: str, *, scale: float = 1.0, halo: int = 0):
    space = []
    for a in "yx":
        size = v5.SizeReference(tensor_id=v5.TensorId(ref), axis_id=v5.AxisId(a))
        if halo:
            space.append(v5.SpaceOutputAxisWithHalo(id=v5.AxisId(a), size=size, halo=halo, scale=scale))
        else:
            space.append(v5.SpaceOutputAxis(id=v5.AxisId(a), size=size, scale=scale))
    return [
        v5.BatchAxis(),
        v5.ChannelAxis(channel_names=[v5.Identifier(f"o{i}") for i in range(channels)]),
        *space,
    ]


def _zmuv_descr(v5):
    return [
        v5.ZeroMeanUnitVarianceDescr(
            kwargs=v5.ZeroMeanUnitVarianceKwargs(axes=[v5.AxisId("y"), v5.AxisId("x")])
        )
    ]


def torchem_like(folder: Path, *, test_size: int = 96, seed: int = 0) -> Path:
    """U-Net with instance norm, output at half resolution (``scale: 2.0``), no halo; input 32 + n*16."""
    from bioimageio.spec.model import v0_5 as v5

    torch = _torch()
    folder = Path(folder)
    work = folder.with_name(folder.name + "_src")
    work.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    net = _nets()[0]().eval()
    x = np.random.default_rng(seed).normal(20.0, 5.0, (1, 1, test_size, test_size)).astype(np.float32)
    (y,) = _run(net, [_zmuv(x)])
    np.save(work / "in.npy", x)
    np.save(work / "out.npy", y)
    descr = v5.ModelDescr(
        **_common(v5, work, "torch-em-like instance-norm U-Net"),
        inputs=[
            v5.InputTensorDescr(
                id=v5.TensorId("raw"),
                axes=_in_axes(v5, 1, v5.ParameterizedSize(min=32, step=16)),
                test_tensor=v5.FileDescr(source=work / "in.npy"),
                preprocessing=_zmuv_descr(v5),
            )
        ],
        outputs=[
            v5.OutputTensorDescr(
                id=v5.TensorId("foreground"),
                axes=_out_axes(v5, 2, "raw", scale=2.0),
                test_tensor=v5.FileDescr(source=work / "out.npy"),
            )
        ],
        weights=v5.WeightsDescr(**_weights(v5, work, net, [_zmuv(x)], ["raw"], ["foreground"])),
    )
    return _save(descr, folder, work)


def fixed_with_halo(folder: Path, *, size: int = 512, halo: int = 32, seed: int = 0) -> Path:
    """A local network with a fixed ``size`` x ``size`` input and an output halo of ``halo``."""
    from bioimageio.spec.model import v0_5 as v5

    torch = _torch()
    folder = Path(folder)
    work = folder.with_name(folder.name + "_src")
    work.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    net = _nets()[1]().eval()
    x = np.random.default_rng(seed).normal(20.0, 5.0, (1, 1, size, size)).astype(np.float32)
    (y,) = _run(net, [_zmuv(x)])
    y = (1 / (1 + np.exp(-y.astype(np.float64)))).astype(np.float32)
    np.save(work / "in.npy", x)
    np.save(work / "out.npy", y)
    descr = v5.ModelDescr(
        **_common(v5, work, "fixed-size model with halo"),
        inputs=[
            v5.InputTensorDescr(
                id=v5.TensorId("raw"),
                axes=_in_axes(v5, 1, size),
                test_tensor=v5.FileDescr(source=work / "in.npy"),
                preprocessing=_zmuv_descr(v5),
            )
        ],
        outputs=[
            v5.OutputTensorDescr(
                id=v5.TensorId("prob"),
                axes=_out_axes(v5, 1, "raw", halo=halo),
                test_tensor=v5.FileDescr(source=work / "out.npy"),
                postprocessing=[v5.SigmoidDescr()],
            )
        ],
        weights=v5.WeightsDescr(**_weights(v5, work, net, [_zmuv(x)], ["raw"], ["prob"], onnx=False)),
    )
    return _save(descr, folder, work)


def two_in_two_out(
    folder: Path, *, test_size: int = 48, seed: int = 0, bad_at: tuple[int, int] | None = None
) -> Path:
    """Inputs ``raw`` and ``mask`` (16 + n*8, the second sized by the first), outputs ``fg`` (2 channels,
    sigmoid) and ``dist`` (1 channel), no halo. ``bad_at=(y, x)`` spoils the ``dist`` test output there
    (by 1)."""
    from bioimageio.spec.model import v0_5 as v5

    torch = _torch()
    folder = Path(folder)
    work = folder.with_name(folder.name + "_src")
    work.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    net = _nets()[2]().eval()
    rng = np.random.default_rng(seed)
    a = rng.normal(20.0, 5.0, (1, 1, test_size, test_size)).astype(np.float32)
    b = rng.normal(3.0, 1.0, (1, 1, test_size, test_size)).astype(np.float32)
    fg, dist = _run(net, [_zmuv(a), b])
    fg = (1 / (1 + np.exp(-fg.astype(np.float64)))).astype(np.float32)
    if bad_at is not None:
        dist[0, 0, bad_at[0], bad_at[1]] += 1.0
    for n, arr in {"a": a, "b": b, "fg": fg, "dist": dist}.items():
        np.save(work / f"{n}.npy", arr)
    ref_size = {ax: v5.SizeReference(tensor_id=v5.TensorId("raw"), axis_id=v5.AxisId(ax)) for ax in "yx"}
    mask_axes = _in_axes(v5, 1, 1)
    mask_axes[2:] = [v5.SpaceInputAxis(id=v5.AxisId(ax), size=ref_size[ax]) for ax in "yx"]
    descr = v5.ModelDescr(
        **_common(v5, work, "two inputs two outputs"),
        inputs=[
            v5.InputTensorDescr(
                id=v5.TensorId("raw"),
                axes=_in_axes(v5, 1, v5.ParameterizedSize(min=16, step=8)),
                test_tensor=v5.FileDescr(source=work / "a.npy"),
                preprocessing=_zmuv_descr(v5),
            ),
            v5.InputTensorDescr(
                id=v5.TensorId("mask"), axes=mask_axes, test_tensor=v5.FileDescr(source=work / "b.npy")
            ),
        ],
        outputs=[
            v5.OutputTensorDescr(
                id=v5.TensorId("fg"),
                axes=_out_axes(v5, 2, "raw"),
                test_tensor=v5.FileDescr(source=work / "fg.npy"),
                postprocessing=[v5.SigmoidDescr()],
            ),
            v5.OutputTensorDescr(
                id=v5.TensorId("dist"),
                axes=_out_axes(v5, 1, "raw"),
                test_tensor=v5.FileDescr(source=work / "dist.npy"),
            ),
        ],
        weights=v5.WeightsDescr(
            **_weights(v5, work, net, [_zmuv(a), b], ["raw", "mask"], ["fg", "dist"], onnx=True)
        ),
    )
    return _save(descr, folder, work)


def v04_fixed_with_halo(
    folder: Path, *, size: int = 64, halo: int = 8, seed: int = 0, fixed_output: bool = True
) -> Path:
    """Format 0.4: fixed input shape ``[1, 1, size, size]``, an output halo, the output shape fixed too
    (``fixed_output``; bioimageio.spec's 0.4 -> 0.5 converter refuses that) or implicit; TorchScript
    weights."""
    from bioimageio.spec.model import v0_4 as v4
    from bioimageio.spec.model import v0_5 as v5

    torch = _torch()
    folder = Path(folder)
    work = folder.with_name(folder.name + "_src")
    work.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    net = _nets()[1](1, 2).eval()
    x = np.random.default_rng(seed).normal(20.0, 5.0, (1, 1, size, size)).astype(np.float32)
    (y,) = _run(net, [_zmuv(x)])
    y = (1 / (1 + np.exp(-y.astype(np.float64)))).astype(np.float32)
    np.save(work / "in.npy", x)
    np.save(work / "out.npy", y)
    ts = _weights(v5, work, net, [_zmuv(x)], ["raw"], ["prob"], onnx=False)["torchscript"]
    (work / "README.md").write_text("# 0.4 fixed with halo\n")
    descr = v4.ModelDescr(
        name="0.4 fixed shape with halo",
        description="Format 0.4, fixed input shape, output halo.",
        authors=[v4.Author(name="runner tests")],
        cite=[v4.CiteEntry(text="runner tests", url="https://example.com")],
        license="MIT",
        documentation=work / "README.md",
        timestamp="2024-01-01T00:00:00",
        inputs=[
            v4.InputTensorDescr(
                name="raw",
                axes="bcyx",
                data_type="float32",
                shape=[1, 1, size, size],
                preprocessing=[
                    v4.ZeroMeanUnitVarianceDescr(
                        kwargs=v4.ZeroMeanUnitVarianceKwargs(mode="per_sample", axes="yx")
                    )
                ],
            )
        ],
        outputs=[
            v4.OutputTensorDescr(
                name="prob",
                axes="bcyx",
                data_type="float32",
                shape=[1, 2, size, size]
                if fixed_output
                else v4.ImplicitOutputShape(
                    reference_tensor="raw", scale=[1.0, 0.0, 1.0, 1.0], offset=[0, 1, 0, 0]
                ),
                halo=[0, 0, halo, halo],
                postprocessing=[v4.SigmoidDescr()],
            )
        ],
        test_inputs=[work / "in.npy"],
        test_outputs=[work / "out.npy"],
        weights=v4.WeightsDescr(
            torchscript=v4.TorchscriptWeightsDescr(
                source=ts.source.absolute(), pytorch_version=ts.pytorch_version
            )
        ),
    )
    return _save(descr, folder, work)

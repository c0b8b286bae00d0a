"""Build tiny bioimage.io model packages for tests and benchmarks (bioimageio.spec, no hand-written YAML).

``build_package(folder, ...)`` writes a package folder (and optionally a zip) holding a small fully
convolutional network with one pooling level (so tile phase matters), exported as TorchScript, ONNX and/or a
PyTorch state dict with its architecture source. Sizes are ``min + n*step`` with an output halo, or fixed; 2D
or 3D; any number of input channels and output channels; optionally an output upsampled x2 relative to the
input. The test tensors are the network's own output for a random input (computed without padding, like
``bioimageio test``).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ARCHITECTURE_SOURCE = '''
import torch
from torch import nn


class TinyNet(nn.Module):
    """conv-relu, maxpool x2, conv-relu, upsample x2, concat skip, conv (+ optional x2 output upsampling)."""

    def __init__(self, ndim: int = 2, in_channels: int = 1, out_channels: int = 2, width: int = 8,
                 upsample_output: int = 1):
        super().__init__()
        conv = nn.Conv2d if ndim == 2 else nn.Conv3d
        pool = nn.MaxPool2d if ndim == 2 else nn.MaxPool3d
        mode = "nearest"
        self.enc = nn.Sequential(conv(in_channels, width, 3, padding=1), nn.ReLU())
        self.down = pool(2)
        self.mid = nn.Sequential(conv(width, width, 3, padding=1), nn.ReLU())
        self.up = nn.Upsample(scale_factor=2, mode=mode)
        self.dec = conv(2 * width, out_channels, 3, padding=1)
        self.out_up = nn.Identity()
        if upsample_output > 1:
            self.out_up = nn.Upsample(scale_factor=upsample_output, mode=mode)

    def forward(self, x):
        e = self.enc(x)
        m = self.up(self.mid(self.down(e)))
        return self.out_up(self.dec(torch.cat([e, m], dim=1)))


class TwoInputNet(nn.Module):
    """Two image inputs (concatenated along channels) into a TinyNet."""

    def __init__(self, ndim: int = 2, in_channels: int = 2, out_channels: int = 2, upsample_output: int = 1):
        super().__init__()
        self.net = TinyNet(ndim=ndim, in_channels=in_channels, out_channels=out_channels,
                           upsample_output=upsample_output)

    def forward(self, a, b):
        return self.net(torch.cat([a, b], dim=1))


class TinyUNet(nn.Module):
    """A U-Net-like network (two conv blocks per level, ``depth`` poolings) for benchmarks."""

    def __init__(self, ndim: int = 2, in_channels: int = 1, out_channels: int = 2, width: int = 16,
                 depth: int = 3):
        super().__init__()
        conv = nn.Conv2d if ndim == 2 else nn.Conv3d
        pool = nn.MaxPool2d if ndim == 2 else nn.MaxPool3d

        def block(cin, cout):
            return nn.Sequential(conv(cin, cout, 3, padding=1), nn.ReLU(),
                                 conv(cout, cout, 3, padding=1), nn.ReLU())

        chans = [width * 2**i for i in range(depth + 1)]
        self.down = nn.ModuleList([block(in_channels, chans[0])] + [block(chans[i], chans[i + 1])
                                                                     for i in range(depth)])
        self.pool = pool(2)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.dec = nn.ModuleList([block(chans[i + 1] + chans[i], chans[i]) for i in reversed(range(depth))])
        self.head = conv(chans[0], out_channels, 1)

    def forward(self, x):
        skips = []
        for i, blk in enumerate(self.down):
            x = blk(x if i == 0 else self.pool(x))
            skips.append(x)
        skips.pop()
        for blk in self.dec:
            x = blk(torch.cat([self.up(x), skips.pop()], dim=1))
        return self.head(x)
'''


_MODULE = None


def architecture_module():
    """The module defining ``TinyNet`` and ``TinyUNet``, imported from :data:`ARCHITECTURE_SOURCE` written to
    a temporary file (TorchScript's compiler reads the source of the classes it scripts)."""
    global _MODULE
    if _MODULE is None:
        import importlib.util
        import sys
        import tempfile

        path = Path(tempfile.mkdtemp(prefix="runner-tiny-arch-")) / "tiny_architecture.py"
        path.write_text(ARCHITECTURE_SOURCE)
        spec = importlib.util.spec_from_file_location("tiny_architecture", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules["tiny_architecture"] = module
        spec.loader.exec_module(module)
        _MODULE = module
    return _MODULE


@dataclass
class BuiltPackage:
    folder: Path
    zip: Path | None
    net: object
    """The torch module (eval mode)."""
    rdf: Path


def make_net(*, arch: str = "TinyNet", seed: int = 0, **kwargs):
    import torch

    torch.manual_seed(seed)
    net = getattr(architecture_module(), arch)(**kwargs).eval()
    return net


INPUT_IDS = ("raw", "aux")


def _same_as_raw(v5, ndim):
    return {a: v5.SizeReference(tensor_id=v5.TensorId("raw"), axis_id=v5.AxisId(a)) for a in "zyx"[-ndim:]}


def _axes_in(v5, ndim, in_channels, size_rule):
    space = [
        v5.SpaceInputAxis(id=v5.AxisId(a), size=size_rule[a] if isinstance(size_rule, dict) else size_rule)
        for a in "zyx"[-ndim:]
    ]
    return [
        v5.BatchAxis(),
        v5.ChannelAxis(channel_names=[v5.Identifier(f"c{i}") for i in range(in_channels)]),
        *space,
    ]


def _axes_out(v5, ndim, out_channels, halo, scale):
    axes = [
        v5.BatchAxis(),
        v5.ChannelAxis(channel_names=[v5.Identifier(f"o{i}") for i in range(out_channels)]),
    ]
    for a in "zyx"[-ndim:]:
        ref = v5.SizeReference(tensor_id=v5.TensorId("raw"), axis_id=v5.AxisId(a))
        if halo:
            axes.append(
                v5.SpaceOutputAxisWithHalo(id=v5.AxisId(a), size=ref, halo=halo * int(1 / scale), scale=scale)
            )
        else:
            axes.append(v5.SpaceOutputAxis(id=v5.AxisId(a), size=ref, scale=scale))
    return axes


def build_package(
    folder: str | Path,
    *,
    ndim: int = 2,
    in_channels: int = 1,
    out_channels: int = 2,
    halo: int = 8,
    min_size: int | None = None,
    step: int = 8,
    fixed: int | None = None,
    formats: tuple[str, ...] = ("torchscript", "onnx"),
    upsample_output: int = 1,
    arch: str = "TinyNet",
    arch_kwargs: dict | None = None,
    preprocessing: str = "zero_mean_unit_variance",
    sigmoid: bool = True,
    runner_config: dict | None = None,
    test_shape: tuple[int, ...] | None = None,
    make_zip: bool = False,
    n_inputs: int = 1,
    seed: int = 0,
) -> BuiltPackage:
    """Write a package folder (and ``<folder>.zip`` with ``make_zip``); see the module docstring."""
    from bioimageio.spec.model import v0_5 as v5

    folder = Path(folder)
    work = folder.with_name(folder.name + "_src")
    work.mkdir(parents=True, exist_ok=True)
    if n_inputs == 2:
        arch = "TwoInputNet"
    kwargs = dict(
        ndim=ndim, in_channels=in_channels * n_inputs, out_channels=out_channels, **(arch_kwargs or {})
    )
    if arch in ("TinyNet", "TwoInputNet"):
        kwargs["upsample_output"] = upsample_output
    net = make_net(arch=arch, seed=seed, **kwargs)
    if fixed is not None:
        size_rule = fixed
    else:
        min_size = min_size or max(2 * halo + step, 16)
        size_rule = v5.ParameterizedSize(min=min_size, step=step)
    tshape = test_shape or ((fixed or (min_size + 2 * step)),) * ndim
    rng = np.random.default_rng(seed)
    xs = [rng.normal(10.0, 3.0, size=(1, in_channels, *tshape)).astype(np.float32) for _ in range(n_inputs)]
    y = _reference_output(net, xs, preprocessing=preprocessing, sigmoid=sigmoid)
    for i, x in enumerate(xs):
        np.save(work / f"test_input{i}.npy", x)
    np.save(work / "test_output.npy", y)
    (work / "README.md").write_text("# tiny test model\n\nA tiny network for runner's tests.\n")
    weights = _write_weights(v5, work, net, xs, formats, arch, kwargs)
    pre = []
    if preprocessing == "zero_mean_unit_variance":
        pre = [
            v5.ZeroMeanUnitVarianceDescr(
                kwargs=v5.ZeroMeanUnitVarianceKwargs(axes=[v5.AxisId(a) for a in "zyx"[-ndim:]])
            )
        ]
    inputs = [
        v5.InputTensorDescr(
            id=v5.TensorId(INPUT_IDS[i]),
            axes=_axes_in(v5, ndim, in_channels, size_rule if i == 0 else _same_as_raw(v5, ndim)),
            test_tensor=v5.FileDescr(source=work / f"test_input{i}.npy"),
            preprocessing=pre,
        )
        for i in range(n_inputs)
    ]
    outputs = [
        v5.OutputTensorDescr(
            id=v5.TensorId("prediction"),
            axes=_axes_out(v5, ndim, out_channels, halo, 1.0 / upsample_output),
            test_tensor=v5.FileDescr(source=work / "test_output.npy"),
            postprocessing=[v5.SigmoidDescr()] if sigmoid else [],
        )
    ]
    descr = v5.ModelDescr(
        name="tiny test model",
        description="A tiny fully convolutional network built by runner's tests.",
        authors=[v5.Author(name="runner tests")],
        cite=[v5.CiteEntry(text="runner tests", url="https://example.com")],
        license="MIT",
        documentation=v5.FileDescr(source=work / "README.md"),
        inputs=inputs,
        outputs=outputs,
        weights=weights,
        config=v5.Config(**({"runner": runner_config} if runner_config else {})),
    )
    return _save(descr, folder, work, net, make_zip=make_zip)


def _save(descr, folder: Path, work: Path, net, *, make_zip: bool = False) -> BuiltPackage:
    """Save the description as a package folder (and zip), remove the staging folder."""
    from bioimageio.spec import save_bioimageio_package, save_bioimageio_package_as_folder

    if folder.exists():
        shutil.rmtree(folder)
    save_bioimageio_package_as_folder(descr, output_path=folder)
    zip_path = None
    if make_zip:
        zip_path = folder.with_suffix(".zip")
        save_bioimageio_package(descr, output_path=zip_path)
    shutil.rmtree(work)
    rdf = next(p for p in (folder / "rdf.yaml", folder / "bioimageio.yaml") if p.exists())
    return BuiltPackage(folder=folder, zip=zip_path, net=net, rdf=rdf)


def _reference_output(net, xs, *, preprocessing: str, sigmoid: bool) -> np.ndarray:
    import torch

    xs = [xs] if isinstance(xs, np.ndarray) else xs
    tensors = []
    for x in xs:
        xx = x.astype(np.float64)
        if preprocessing == "zero_mean_unit_variance":
            axes = tuple(range(2, x.ndim))
            xx = (xx - xx.mean(axis=axes, keepdims=True)) / (xx.std(axis=axes, keepdims=True) + 1e-6)
        tensors.append(torch.from_numpy(xx.astype(np.float32)))
    with torch.no_grad():
        y = net(*tensors).numpy()
    return (1 / (1 + np.exp(-y))).astype(np.float32) if sigmoid else y


def _onnx_export(*args, **kwargs) -> None:
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the classic exporter warns it is legacy
        torch.onnx.export(*args, **kwargs)


def _write_weights(v5, work: Path, net, xs, formats, arch: str, kwargs: dict):
    import torch

    x = xs[0]
    entries = {}
    parent = None
    version = v5.Version(torch.__version__.split("+")[0])
    if "pytorch_state_dict" in formats:
        (work / "tiny_architecture.py").write_text(ARCHITECTURE_SOURCE)
        torch.save(net.state_dict(), work / "weights_state.pt")
        entries["pytorch_state_dict"] = v5.PytorchStateDictWeightsDescr(
            source=work / "weights_state.pt",
            pytorch_version=version,
            architecture=v5.ArchitectureFromFileDescr(
                source=work / "tiny_architecture.py", callable=arch, kwargs=kwargs
            ),
        )
        parent = "pytorch_state_dict"
    if "torchscript" in formats:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch 2.9+ calls TorchScript deprecated
            torch.jit.script(net).save(str(work / "weights.torchscript"))
        entries["torchscript"] = v5.TorchscriptWeightsDescr(
            source=work / "weights.torchscript", pytorch_version=version, parent=parent
        )
        parent = parent or "torchscript"
    if "onnx" in formats:
        names = ["batch"] + [f"s{i}" for i in range(x.ndim - 2)]
        dyn = {0: "batch", **{i + 2: names[i + 1] for i in range(x.ndim - 2)}}
        names_in = list(INPUT_IDS[: len(xs)])
        _onnx_export(
            net,
            tuple(torch.from_numpy(a) for a in xs),
            str(work / "weights.onnx"),
            input_names=names_in,
            output_names=["prediction"],
            dynamic_axes={**{n: dyn for n in names_in}, "prediction": dyn},
            opset_version=17,
            dynamo=False,
        )
        entries["onnx"] = v5.OnnxWeightsDescr(
            source=work / "weights.onnx", opset_version=17, parent=parent if parent != "onnx" else None
        )
    return v5.WeightsDescr(**entries)


def build_package_v04(
    folder: str | Path, *, halo: int = 8, min_size: int = 32, step: int = 8, seed: int = 0
) -> BuiltPackage:
    """A format 0.4 package (2D, one input channel, two output channels, ONNX weights) written with
    ``bioimageio.spec.model.v0_4``; loaders convert it to 0.5."""
    from bioimageio.spec.model import v0_4 as v4

    folder = Path(folder)
    work = folder.with_name(folder.name + "_src")
    work.mkdir(parents=True, exist_ok=True)
    net = make_net(seed=seed, ndim=2, in_channels=1, out_channels=2)
    rng = np.random.default_rng(seed)
    x = rng.normal(10.0, 3.0, size=(1, 1, min_size + 2 * step, min_size + 2 * step)).astype(np.float32)
    y = _reference_output(net, x, preprocessing="zero_mean_unit_variance", sigmoid=True)
    np.save(work / "test_input.npy", x)
    np.save(work / "test_output.npy", y)
    (work / "README.md").write_text("# tiny 0.4 test model\n")
    import torch

    dyn = {0: "batch", 2: "y", 3: "x"}
    _onnx_export(
        net,
        (torch.from_numpy(x),),
        str(work / "weights.onnx"),
        input_names=["raw"],
        output_names=["prediction"],
        dynamic_axes={"raw": dyn, "prediction": dyn},
        opset_version=17,
        dynamo=False,
    )
    descr = v4.ModelDescr(
        name="tiny test model 0.4",
        description="A tiny network in the 0.4 format.",
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
                shape=v4.ParameterizedInputShape(min=[1, 1, min_size, min_size], step=[0, 0, step, step]),
                preprocessing=[
                    v4.ZeroMeanUnitVarianceDescr(
                        kwargs=v4.ZeroMeanUnitVarianceKwargs(mode="per_sample", axes="yx")
                    )
                ],
            )
        ],
        outputs=[
            v4.OutputTensorDescr(
                name="prediction",
                axes="bcyx",
                data_type="float32",
                shape=v4.ImplicitOutputShape(
                    reference_tensor="raw", scale=[1.0, 0.0, 1.0, 1.0], offset=[0, 1, 0, 0]
                ),
                halo=[0, 0, halo, halo],
                postprocessing=[v4.SigmoidDescr()],
            )
        ],
        test_inputs=[work / "test_input.npy"],
        test_outputs=[work / "test_output.npy"],
        weights=v4.WeightsDescr(onnx=v4.OnnxWeightsDescr(source=work / "weights.onnx", opset_version=17)),
    )
    return _save(descr, folder, work, net)


def build_keras_only(folder: str | Path, *, seed: int = 0) -> Path:
    """A 2D package whose only weights are ``keras_hdf5`` (a placeholder file: runner must refuse it before
    reading it). Returns the package folder."""
    from bioimageio.spec import load_description, save_bioimageio_package_as_folder
    from bioimageio.spec.model import v0_5 as v5

    folder = Path(folder)
    base = build_package(folder.with_name(folder.name + "_base"), formats=("onnx",), seed=seed)
    descr = load_description(base.rdf, perform_io_checks=False)
    h5 = base.folder / "weights.h5"
    h5.write_bytes(b"not really keras")
    keras = v5.KerasHdf5WeightsDescr(source=h5, tensorflow_version=v5.Version("2.15"))
    descr = descr.model_copy(update={"weights": v5.WeightsDescr(keras_hdf5=keras)})
    if folder.exists():
        shutil.rmtree(folder)
    save_bioimageio_package_as_folder(descr, output_path=folder)
    shutil.rmtree(base.folder)
    return folder

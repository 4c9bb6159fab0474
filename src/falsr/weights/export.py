"""Export a network to ONNX or TorchScript with dynamic height and width, and run an exported ONNX file.

`python export.py model=falsr_b model.weights=FALSR-B.pb format=onnx output=falsr_b.onnx`
The exported graph is the network alone: (N, 1, H, W) Y in [0, 1] -> (N, 1, sH, sW) Y at its scale s, fp32. Colour
conversion, chroma and tiling stay in falsr.protocol.pipeline, so `upscale.py onnx=<file>` gives the same images
as the PyTorch network. The ONNX file carries the genome, the name, the scale and the receptive radius (tiling
needs it) as metadata; the TorchScript file carries them as extra files.
ONNX goes through torch.onnx's TorchScript-based exporter (dynamo=False): it needs only `onnx`, where
the newer dynamo exporter also needs `onnxscript`; on Set5 the file matches the network to 6e-7 on Y.
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import torch
from torch import Tensor

from falsr.errors import UserError
from falsr.space.genome import DEFAULT_SCALE
from falsr.space.network import FALSRNet

log = logging.getLogger(__name__)

FORMATS = ("onnx", "torchscript")
OPSET = 17
INPUT, OUTPUT = "y", "sr_y"


def _metadata(net: FALSRNet) -> dict[str, str]:
    return {
        "genome": str(net.genome),
        "name": net.name,
        "receptive_radius": str(net.receptive_radius()),
        "scale": str(net.scale),
    }


def _example(net: FALSRNet) -> Tensor:
    """A trace input; any size works (height and width are exported as dynamic)."""
    return torch.rand(1, 1, 24, 32, generator=torch.Generator().manual_seed(0))


def export_onnx(net: FALSRNet, path: str | Path) -> Path:
    """Write `net` (fp32) as an ONNX file with dynamic batch, height and width."""
    try:
        import onnx
    except ImportError:
        raise UserError(
            "format=onnx needs the onnx package: pip install onnx onnxruntime (or pip install -e .[export])"
        ) from None
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    net = net.float().eval().to(memory_format=torch.contiguous_format)
    axes = {INPUT: {0: "batch", 2: "height", 3: "width"}, OUTPUT: {0: "batch", 2: "sr_height", 3: "sr_width"}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript-based exporter is deprecated, not gone
        torch.onnx.export(
            net,
            (_example(net),),
            str(path),
            dynamo=False,
            input_names=[INPUT],
            output_names=[OUTPUT],
            dynamic_axes=axes,
            opset_version=OPSET,
        )
    model = onnx.load(str(path))
    for key, value in _metadata(net).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))
    return path


def export_torchscript(net: FALSRNet, path: str | Path) -> Path:
    """Write `net` (fp32) as a traced TorchScript file; the trace keeps height and width symbolic."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    net = net.float().eval().to(memory_format=torch.contiguous_format)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit's deprecation notice
        traced = torch.jit.trace(net, _example(net))
        torch.jit.save(traced, str(path), _extra_files={"falsr.json": json.dumps(_metadata(net))})
    return path


def export(net: FALSRNet, fmt: str, path: str | Path) -> Path:
    if fmt not in FORMATS:
        raise UserError(f"unknown format {fmt!r}: choose one of {', '.join(FORMATS)}")
    return (export_onnx if fmt == "onnx" else export_torchscript)(net, path)


class OnnxNet:
    """An exported ONNX file run by onnxruntime, usable wherever falsr.protocol.pipeline takes a network.

    Needs neither Lightning nor Hydra (nor the network code): only onnxruntime, torch and the pipeline's
    colour conversions, so a deployment can upscale with the file alone.
    """

    dtype = torch.float32
    device = torch.device("cpu")

    def __init__(self, path: str | Path, threads: int | None = None):
        try:
            import onnxruntime as ort
        except ImportError:
            raise UserError(
                "running an ONNX file needs onnxruntime: pip install onnxruntime (or pip install -e .[export])"
            ) from None
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"ONNX file not found: {path} (make one with export.py format=onnx)")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as err:  # noqa: BLE001 - any unreadable file is the same user problem
            raise UserError(f"cannot load ONNX file {path}: {str(err).splitlines()[0]}") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        if "receptive_radius" not in meta:
            raise UserError(f"{path} was not written by falsr's export.py (no receptive_radius metadata)")
        self._radius = int(meta["receptive_radius"])
        self.name, self.genome = meta.get("name", path.stem), meta.get("genome")
        self.scale = int(meta.get("scale", DEFAULT_SCALE))

    def receptive_radius(self) -> int:
        return self._radius

    def __call__(self, y: Tensor) -> Tensor:
        out = self.session.run([OUTPUT], {INPUT: y.to(torch.float32).contiguous().numpy()})[0]
        return torch.from_numpy(out)


def run(cfg) -> Path:
    """export.py: build the configured model with its weights and write it in `format` to `output`."""
    from hydra.utils import instantiate

    fmt = cfg.format
    if fmt not in FORMATS:
        raise UserError(f"unknown format {fmt!r}: choose one of {', '.join(FORMATS)} (format=onnx)")
    if not cfg.model.get("weights"):
        log.warning("model.weights is not set: exporting an untrained network")
    net = instantiate(cfg.model)
    output = Path(cfg.output or f"{net.name}.{'onnx' if fmt == 'onnx' else 'pt'}")
    export(net, fmt, output)
    print(f"wrote {fmt} {output} ({net.name}, genome {net.genome}; input {INPUT}: N x 1 x H x W Y in [0, 1])")
    return output

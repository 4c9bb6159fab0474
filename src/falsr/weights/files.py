"""Load and save network weights: released FALSR .pb graphs, our .pt files, Lightning .ckpt files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from falsr.errors import UserError
from falsr.space.genome import (
    DEFAULT_SCALE,
    HR_FEATURES,
    active_space,
    parse_genome,
    space_from_config,
    translate_genome,
)

FORMATS = ".pb (released FALSR graph), .pt/.pth (falsr weights) or .ckpt (Lightning checkpoint)"


def read_weights(path: Path) -> tuple[dict, str | None, dict]:
    """The state_dict in a file, the genome string stored beside it (if any) and the metadata that
    :func:`save_weights` stored with it (e.g. ``lineage_steps``; empty for other files)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".pb":
        from falsr.weights.tf_import import import_graph

        genome, sd = import_graph(path)
        return sd, str(genome), {}
    if suffix not in (".pt", ".pth", ".ckpt"):
        raise UserError(f"unsupported weights file {path}: use {FORMATS}")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # noqa: BLE001 - any unreadable file is the same user problem
        raise UserError(f"cannot read weights file {path} (corrupt or not a PyTorch file): {err}") from None
    if not isinstance(blob, dict):
        raise UserError(f"weights file {path} holds a {type(blob).__name__}, not a state_dict")
    genome = blob.get("genome")
    if genome is None and isinstance(blob.get("hyper_parameters"), dict):
        genome = blob["hyper_parameters"].get("genome")
    sd = blob.get("state_dict", blob)
    meta = blob.get("meta") if isinstance(blob.get("meta"), dict) else {}
    if genome is not None and isinstance(blob.get("space"), dict):  # written in another search space: same cells
        genome = translate_genome(str(genome), space_from_config(blob["space"]))
    return sd, (str(genome) if genome is not None else None), meta


def network_keys(sd: dict) -> dict:
    """The network's tensors under its own names: Lightning checkpoints prefix them (``net.``), our files do not."""
    if "head.weight" in sd:
        return sd
    for key in sd:
        if key.endswith(".head.weight"):
            prefix = key[: -len("head.weight")]
            return {k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)}
    return sd


def weights_scale(sd: dict) -> int:
    """The scale a state_dict was trained for, read off its upsampler (8*s^2 output channels before DepthToSpace):
    true of every format (the released .pb files are x2, .pt files also record it, .ckpt files do not)."""
    weight = network_keys(sd).get("upsampler.conv.weight")
    if weight is None:
        return DEFAULT_SCALE
    return round((int(weight.shape[0]) // HR_FEATURES) ** 0.5)


@dataclass(frozen=True)
class WeightsFile:
    """A weights file read once: what :func:`open_weights` found, for building the network at its scale and then
    loading it (falsr.weights.model.build_model) without reading the file twice."""

    path: Path
    state_dict: dict
    genome: str | None
    scale: int


def open_weights(path: str | Path) -> WeightsFile:
    """Find and read a weights file (see :func:`find_weights`); a missing or ONNX file is a one-line error."""
    from falsr import default_data_dir

    path = find_weights(path)
    if not path.is_file():
        nor = "" if path.is_absolute() else f", nor {default_data_dir() / 'pretrained' / path}"
        raise FileNotFoundError(f"weights file not found: {path}{nor} (expected {FORMATS})")
    if path.suffix.lower() == ".onnx":
        raise UserError(f"{path} is an exported ONNX network, not weights: run it with upscale.py onnx={path}")
    sd, genome, _ = read_weights(path)
    return WeightsFile(path, sd, genome, weights_scale(sd))


def find_weights(path: str | Path) -> Path:
    """`path` where it is a file; else a relative one found in ``<data dir>/pretrained/`` (where
    ``python -m falsr.fetch weights`` puts the released .pb files), so ``model.weights=FALSR-B.pb`` works from
    any working directory; else `path` unchanged."""
    from falsr import default_data_dir

    path = Path(path).expanduser()
    if path.is_file() or path.is_absolute():
        return path
    found = default_data_dir() / "pretrained" / path
    return found if found.is_file() else path


def load_weights(net: torch.nn.Module, path: str | Path | WeightsFile) -> torch.nn.Module:
    """Load weights (a path, or a file :func:`open_weights` read) into `net` (a FALSRNet), checking they belong to
    the same genome and scale."""
    weights = path if isinstance(path, WeightsFile) else open_weights(path)
    path, sd, genome, scale = weights.path, weights.state_dict, weights.genome, weights.scale
    if genome is not None and parse_genome(genome).canonical() != net.genome.canonical():
        raise UserError(
            f"weights file {path} is for genome {genome}, but the model is {net.genome}: "
            "choose the matching model= (e.g. model=falsr_b for FALSR-B.pb)"
        )
    net_scale = getattr(net, "scale", DEFAULT_SCALE)
    if scale != net_scale:
        raise UserError(
            f"weights file {path} is a x{scale} network, but the model is built at x{net_scale}: set "
            f"data.scale={scale} (or model.scale={scale} where there is no data node)"
        )
    own = net.state_dict()
    sd = network_keys(sd)
    missing = sorted(set(own) - set(sd))
    if missing:
        raise UserError(f"weights do not fit the network: {len(missing)} tensors missing, e.g. {missing[0]!r}")
    sd = {k: sd[k] for k in own}
    for key, value in sd.items():
        if tuple(value.shape) != tuple(own[key].shape):
            raise UserError(
                f"weights file {path}: tensor {key} has shape {tuple(value.shape)}, "
                f"the model needs {tuple(own[key].shape)}"
            )
    net.load_state_dict(sd)
    return net


def save_weights(net: torch.nn.Module, path: str | Path, **meta) -> Path:
    """Save as a plain PyTorch file holding the genome, its scale, the state_dict and `meta` (plain values)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "genome": str(net.genome),
            "space": active_space().to_dict(),
            "name": getattr(net, "name", None),
            "scale": getattr(net, "scale", DEFAULT_SCALE),
            "state_dict": net.state_dict(),
            "meta": dict(meta),
        },
        path,
    )
    return path

"""Load and save network weights: released FALSR .pb graphs, our .pt files, Lightning .ckpt files."""

from __future__ import annotations

from pathlib import Path

import torch

from falsr.errors import UserError
from falsr.genome import active_space, parse_genome, space_from_config, translate_genome

FORMATS = ".pb (released FALSR graph), .pt/.pth (falsr weights) or .ckpt (Lightning checkpoint)"


def _load_state_dict(path: Path) -> tuple[dict, str | None]:
    """The state_dict in a file and the genome string stored beside it (if any)."""
    sd, genome, _ = read_weights(path)
    return sd, genome


def read_weights(path: Path) -> tuple[dict, str | None, dict]:
    """The state_dict in a file, the genome string stored beside it (if any) and the metadata that
    :func:`save_weights` stored with it (e.g. ``lineage_steps``; empty for other files)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".pb":
        from falsr.tf_import import import_graph

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


def strip_prefix(sd: dict, expected: set[str]) -> dict:
    """Lightning checkpoints prefix the network's keys (e.g. `net.`): find and drop that prefix."""
    if expected <= set(sd):
        return {k: sd[k] for k in expected}
    for key in sd:
        if key.endswith("head.weight"):
            prefix = key[: -len("head.weight")]
            stripped = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
            if expected <= set(stripped):
                return {k: stripped[k] for k in expected}
    missing = sorted(expected - set(sd))
    raise UserError(f"weights do not fit the network: {len(missing)} tensors missing, e.g. {missing[0]!r}")


def load_weights(net: torch.nn.Module, path: str | Path) -> torch.nn.Module:
    """Load weights into `net` (a FALSRNet), checking they belong to the same genome."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path} (expected {FORMATS})")
    sd, genome = _load_state_dict(path)
    if genome is not None and parse_genome(genome).canonical() != net.genome.canonical():
        raise UserError(f"weights file {path} is for genome {genome}, but the model is {net.genome}: "
                        "choose the matching model= (e.g. model=falsr_b for FALSR-B.pb)")
    own = net.state_dict()
    sd = strip_prefix(sd, set(own))
    for key, value in sd.items():
        if tuple(value.shape) != tuple(own[key].shape):
            raise UserError(f"weights file {path}: tensor {key} has shape {tuple(value.shape)}, "
                            f"the model needs {tuple(own[key].shape)}")
    net.load_state_dict(sd)
    return net


def save_weights(net: torch.nn.Module, path: str | Path, **meta) -> Path:
    """Save as a plain PyTorch file holding the genome, the state_dict and `meta` (plain values)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"genome": str(net.genome), "space": active_space().to_dict(), "name": getattr(net, "name", None),
                "state_dict": net.state_dict(), "meta": dict(meta)}, path)
    return path

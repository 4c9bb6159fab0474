"""Released FALSR TensorFlow graphs -> genome and a state_dict for our network.

The genome is read off the graph itself: cell names spell the micro genes, and the inputs of the
ConcatV2 node (or the single tensor) feeding each target's first layer give the macro genes.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

from falsr.errors import UserError
from falsr.space.genome import Cell, Genome
from falsr.weights.tf_graph import TFGraph

PREFIX = "test_sr_evaluator_i1_b0_g/"
FEATURE_NODE = PREFIX + "n32s1/c/Relu"
UPSAMPLER_CONV = PREFIX + "n32s1/2/0"
_CELL_RE = re.compile(r"^" + re.escape(PREFIX) + r"cell(\d+)/([A-Za-z0-9]+_f\d+_k\d+_b\d+_(?:isskip|noskip))")


class NotAFALSRGraph(UserError):
    """The .pb parses as a graph but is not a released FALSR model."""


def _cells(graph: TFGraph) -> dict[int, str]:
    cells: dict[int, str] = {}
    for name in graph.nodes:
        m = _CELL_RE.match(name)
        if m:
            cells.setdefault(int(m.group(1)), m.group(2))
    if not cells or sorted(cells) != list(range(len(cells))) or FEATURE_NODE not in graph.nodes:
        raise NotAFALSRGraph(
            f"{graph.path} is a TensorFlow graph but not a FALSR model: expected nodes "
            f"'{PREFIX}cell0/...' .. 'cellN/...' and '{FEATURE_NODE}' (use the FALSR-A/B/C .pb files of the FALSR release)"
        )
    return cells


def _first_layer_input(graph: TFGraph, prefix: str) -> str:
    """The tensor fed to the first layer under `prefix` (a Conv2D, or the Split of a group conv)."""
    candidates = [n for n in graph.nodes.values() if n.name.startswith(prefix) and n.op in ("Conv2D", "Split")]
    for node in candidates:
        src = node.inputs[1] if node.op == "Split" else node.inputs[0]
        if not src.startswith(prefix):
            return src
    raise NotAFALSRGraph(f"{graph.path}: cannot find the input of {prefix!r}")


def _node_index(graph: TFGraph, tensor: str) -> int:
    """Which genome node (0 = feature extractor, k = cell k-1) a tensor is the output of."""
    if tensor == FEATURE_NODE:
        return 0
    m = re.match(re.escape(PREFIX) + r"cell(\d+)/", tensor)
    if m:
        return int(m.group(1)) + 1
    node = graph.nodes[tensor]
    if node.op == "Add":  # a top-level inverted-bottleneck residual add: the cell is in its inputs
        return max(_node_index(graph, i) for i in node.inputs)
    if node.op == "BiasAdd":
        return _node_index(graph, node.inputs[0])
    raise NotAFALSRGraph(f"{graph.path}: cannot tell which cell produces {tensor!r}")


def _target_inputs(graph: TFGraph, prefix: str) -> list[int]:
    src = _first_layer_input(graph, prefix)
    node = graph.nodes[src]
    if node.op == "ConcatV2":
        return [_node_index(graph, t) for t in node.inputs[:-1]]  # the last input is the axis
    return [_node_index(graph, src)]


def genome_from_graph(graph: TFGraph | str | Path) -> Genome:
    """The exact genome of a released FALSR graph."""
    if not isinstance(graph, TFGraph):
        graph = TFGraph(graph)
    cells = _cells(graph)
    inputs = [_target_inputs(graph, f"{PREFIX}cell{k}/{cells[k]}") for k in range(len(cells))]
    inputs.append(_target_inputs(graph, UPSAMPLER_CONV + "/"))
    for j, nodes in enumerate(inputs):
        if nodes != sorted(nodes) or j not in nodes:
            raise NotAFALSRGraph(f"{graph.path}: target {j} takes nodes {nodes}, which the FALSR space cannot express")
    return Genome.from_cells_and_inputs([Cell.from_name(cells[k]) for k in range(len(cells))], inputs)


def _check_layers(graph: TFGraph) -> None:
    """Our builder assumes stride 1, dilation 1, 'SAME' padding, NHWC everywhere: verify it."""
    for node in graph.nodes.values():
        if node.op in ("Conv2D", "DepthwiseConv2dNative"):
            a = node.attr
            ok = (
                a["padding"].s == b"SAME"
                and list(a["strides"].list.i) == [1, 1, 1, 1]
                and ("dilations" not in a or list(a["dilations"].list.i) == [1, 1, 1, 1])
                and a["data_format"].s in (b"", b"NHWC")
            )
            if not ok:
                raise NotAFALSRGraph(f"{graph.path}: layer {node.name} is not a stride-1 'SAME' NHWC convolution")


def _hwio_to_oihw(kernel: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)))


def _depthwise_to_torch(kernel: np.ndarray) -> torch.Tensor:
    """TF depthwise kernels are [kh, kw, C, M]; torch wants [C*M, 1, kh, kw] (M = 1 here)."""
    kh, kw, c, m = kernel.shape
    return torch.from_numpy(np.ascontiguousarray(kernel.reshape(kh, kw, c * m).transpose(2, 0, 1)[:, None]))


def state_dict_from_graph(graph: TFGraph, genome: Genome) -> dict[str, torch.Tensor]:
    """Map every trained tensor of the graph onto the state_dict keys of `FALSRNet(genome)`.

    TF kernels are HWIO, ours OIHW; grouped kernels are stored unsplit `[k, k, Cin/G, f]`, which
    is exactly torch's `groups=G` layout once transposed. Every graph variable must be used once.
    """
    variables = graph.trainable()
    used: set[str] = set()

    def take(name: str) -> np.ndarray:
        full = PREFIX + name
        if full not in variables:
            raise NotAFALSRGraph(f"{graph.path}: expected variable {full!r} is missing")
        used.add(full)
        return variables[full]

    sd: dict[str, torch.Tensor] = {}

    def conv(ours: str, theirs: str, w: str = "kernel", b: str = "bias") -> None:
        sd[f"{ours}.weight"] = _hwio_to_oihw(take(f"{theirs}/{w}"))
        sd[f"{ours}.bias"] = torch.from_numpy(take(f"{theirs}/{b}").copy())

    conv("head", "n32s1/c")
    for k, cell in enumerate(genome.cell_specs):
        base = f"cell{k}/{cell.tf_name}"
        if cell.op == "invbottleneck_e2":
            conv(f"cells.{k}.project", f"{base}_conv_supple")
            for r in range(cell.repeats):
                conv(f"cells.{k}.blocks.{r}.expand", f"{base}_b{r}_conv_1")
                sd[f"cells.{k}.blocks.{r}.depthwise.weight"] = _depthwise_to_torch(
                    take(f"{base}_b{r}depth_wise/W_depthwise2d")
                )
                sd[f"cells.{k}.blocks.{r}.depthwise.bias"] = torch.from_numpy(
                    take(f"{base}_b{r}depth_wise/b_depthwise2d").copy()
                )
                conv(f"cells.{k}.blocks.{r}.reduce", f"{base}_b{r}_conv_2")
        elif cell.groups > 1:
            for r in range(cell.repeats):
                conv(f"cells.{k}.layers.{r}", f"{base}_b{r}", "W", "b")
        else:
            for r in range(cell.repeats):
                conv(f"cells.{k}.layers.{r}", f"{base}_b{r}")
    conv("upsampler.conv", "n32s1/2/0")
    conv("upsampler.out", "yout")
    unused = sorted(set(variables) - used)
    if unused:
        raise NotAFALSRGraph(f"{graph.path}: {len(unused)} variables have no place in the network, e.g. {unused[0]}")
    return sd


def import_graph(path: str | Path) -> tuple[Genome, dict[str, torch.Tensor]]:
    """A released FALSR .pb -> (its genome, a state_dict for `FALSRNet(genome)`)."""
    graph = TFGraph(path)
    genome = genome_from_graph(graph)
    _check_layers(graph)
    return genome, state_dict_from_graph(graph, genome)

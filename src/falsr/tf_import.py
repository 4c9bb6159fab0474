"""Released FALSR TensorFlow graphs -> genome (and, later, our state_dict).

The genome is read off the graph itself: cell names spell the micro genes, and the inputs of the
ConcatV2 node (or the single tensor) feeding each target's first layer give the macro genes.
"""

from __future__ import annotations

import re
from pathlib import Path

from falsr.errors import UserError
from falsr.genome import Cell, Genome
from falsr.tf_graph import TFGraph

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
            f"'{PREFIX}cell0/...' .. 'cellN/...' and '{FEATURE_NODE}' (use the FALSR-A/B/C .pb files of the FALSR release)")
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

"""Read TensorFlow-1 frozen GraphDef files without TensorFlow.

TensorFlow is a multi-GB dependency we do not want just to read three weight files, so the few
GraphDef messages we need (the same field numbers as TensorFlow's .proto files) are declared here
with protobuf's descriptor API; unknown fields are skipped by protobuf's parser.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError

from falsr.errors import UserError

_F = descriptor_pb2.FieldDescriptorProto

# DataType enum values of TensorFlow's types.proto that the released graphs use.
_DTYPES = {1: np.float32, 2: np.float64, 3: np.int32, 9: np.int64, 10: np.bool_}


def _message(file: descriptor_pb2.FileDescriptorProto, name: str, fields: list[tuple]) -> None:
    msg = file.message_type.add(name=name)
    for fname, number, ftype, label, type_name in fields:
        f = msg.field.add(name=fname, number=number, type=ftype, label=label)
        if type_name:
            f.type_name = type_name


def _build_classes():
    opt, rep = _F.LABEL_OPTIONAL, _F.LABEL_REPEATED
    file = descriptor_pb2.FileDescriptorProto(name="falsr_tf_graph.proto", package="falsr_tf", syntax="proto3")
    _message(file, "Dim", [("size", 1, _F.TYPE_INT64, opt, None), ("name", 2, _F.TYPE_STRING, opt, None)])
    _message(
        file,
        "TensorShapeProto",
        [
            ("dim", 2, _F.TYPE_MESSAGE, rep, ".falsr_tf.Dim"),
            ("unknown_rank", 3, _F.TYPE_BOOL, opt, None),
        ],
    )
    _message(
        file,
        "TensorProto",
        [
            ("dtype", 1, _F.TYPE_INT32, opt, None),
            ("tensor_shape", 2, _F.TYPE_MESSAGE, opt, ".falsr_tf.TensorShapeProto"),
            ("tensor_content", 4, _F.TYPE_BYTES, opt, None),
            ("float_val", 5, _F.TYPE_FLOAT, rep, None),
            ("double_val", 6, _F.TYPE_DOUBLE, rep, None),
            ("int_val", 7, _F.TYPE_INT32, rep, None),
            ("int64_val", 10, _F.TYPE_INT64, rep, None),
            ("bool_val", 11, _F.TYPE_BOOL, rep, None),
        ],
    )
    _message(
        file,
        "ListValue",
        [
            ("s", 2, _F.TYPE_BYTES, rep, None),
            ("i", 3, _F.TYPE_INT64, rep, None),
            ("f", 4, _F.TYPE_FLOAT, rep, None),
            ("b", 5, _F.TYPE_BOOL, rep, None),
        ],
    )
    _message(
        file,
        "AttrValue",
        [
            ("list", 1, _F.TYPE_MESSAGE, opt, ".falsr_tf.ListValue"),
            ("s", 2, _F.TYPE_BYTES, opt, None),
            ("i", 3, _F.TYPE_INT64, opt, None),
            ("f", 4, _F.TYPE_FLOAT, opt, None),
            ("b", 5, _F.TYPE_BOOL, opt, None),
            ("type", 6, _F.TYPE_INT32, opt, None),
            ("shape", 7, _F.TYPE_MESSAGE, opt, ".falsr_tf.TensorShapeProto"),
            ("tensor", 8, _F.TYPE_MESSAGE, opt, ".falsr_tf.TensorProto"),
        ],
    )
    _message(
        file,
        "AttrEntry",
        [
            ("key", 1, _F.TYPE_STRING, opt, None),
            ("value", 2, _F.TYPE_MESSAGE, opt, ".falsr_tf.AttrValue"),
        ],
    )
    file.message_type[-1].options.map_entry = True
    _message(
        file,
        "NodeDef",
        [
            ("name", 1, _F.TYPE_STRING, opt, None),
            ("op", 2, _F.TYPE_STRING, opt, None),
            ("input", 3, _F.TYPE_STRING, rep, None),
            ("device", 4, _F.TYPE_STRING, opt, None),
        ],
    )
    # A map field must refer to a nested entry type: move AttrEntry into NodeDef.
    node = file.message_type[-1]
    entry = file.message_type[-2]
    nested = node.nested_type.add()
    nested.CopyFrom(entry)
    del file.message_type[-2]
    node.field.add(name="attr", number=5, type=_F.TYPE_MESSAGE, label=rep, type_name=".falsr_tf.NodeDef.AttrEntry")
    _message(file, "GraphDef", [("node", 1, _F.TYPE_MESSAGE, rep, ".falsr_tf.NodeDef")])
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("falsr_tf.GraphDef"))


GraphDef = _build_classes()


@dataclass
class Node:
    """One graph node with its inputs (control inputs and ':0' suffixes removed)."""

    name: str
    op: str
    inputs: list[str]
    attr: dict = field(repr=False)
    raw_inputs: list[str] = field(default_factory=list, repr=False)  # with ':N' output indices


class TFGraph:
    """A parsed frozen graph: nodes by name and the constant tensors as numpy arrays."""

    def __init__(self, path: str | Path):
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"TensorFlow graph file not found: {path}")
        graph = GraphDef()
        try:
            graph.ParseFromString(path.read_bytes())
        except DecodeError as err:
            raise UserError(f"{path} is not a TensorFlow GraphDef (.pb) file or is truncated: {err}") from None
        if not len(graph.node):
            raise UserError(f"{path} holds no graph nodes: not a TensorFlow frozen graph (.pb) file")
        self.path = path
        self.nodes: dict[str, Node] = {}
        for n in graph.node:
            inputs = [i.split(":")[0] for i in n.input if not i.startswith("^")]
            self.nodes[n.name] = Node(n.name, n.op, inputs, dict(n.attr), [i for i in n.input if not i.startswith("^")])

    def const(self, name: str) -> np.ndarray:
        """The value of a Const node (following Identity nodes such as `<var>/read`)."""
        node = self.nodes[name]
        while node.op == "Identity":
            node = self.nodes[node.inputs[0]]
        if node.op != "Const":
            raise ValueError(f"node {name!r} is a {node.op}, not a constant")
        t = node.attr["value"].tensor
        dtype = _DTYPES.get(t.dtype)
        if dtype is None:
            raise ValueError(f"constant {name!r} has unsupported TensorFlow dtype {t.dtype}")
        shape = [d.size for d in t.tensor_shape.dim]
        if t.tensor_content:
            arr = np.frombuffer(t.tensor_content, dtype=dtype).copy()
        else:
            vals = {
                np.float32: t.float_val,
                np.float64: t.double_val,
                np.int32: t.int_val,
                np.int64: t.int64_val,
                np.bool_: t.bool_val,
            }[dtype]
            arr = np.array(list(vals), dtype=dtype)
            if arr.size == 1 and int(np.prod(shape)) > 1:
                arr = np.full(shape, arr[0], dtype=dtype)
        return arr.reshape(shape)

    def trainable(self) -> dict[str, np.ndarray]:
        """Frozen variables: constants read through a `<name>/read` Identity, keyed by variable name."""
        out = {}
        for node in self.nodes.values():
            if node.op == "Identity" and node.name.endswith("/read"):
                src = self.nodes.get(node.inputs[0]) if node.inputs else None
                if src is not None and src.op == "Const":
                    out[src.name] = self.const(src.name)
        return out

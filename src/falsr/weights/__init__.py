"""Network weights: the released FALSR graphs, this project's files, inheritance and export.

- :mod:`falsr.weights.model`      ``build_model``, the model configs' target: the network, then its weights
  loaded or inherited
- :mod:`falsr.weights.files`      load and save .pb / .pt / .ckpt (``load_weights``, ``save_weights``,
  ``read_weights``), re-exported here: ``from falsr.weights import load_weights``
- :mod:`falsr.weights.tf_graph`   a reader of TensorFlow GraphDef protobufs (no TensorFlow)
- :mod:`falsr.weights.tf_import`  the released FALSR-A/B/C graphs as genomes and state dicts
- :mod:`falsr.weights.inherit`    weight inheritance: a child starts from its parents' trained tensors
- :mod:`falsr.weights.export`     ONNX and TorchScript files of a network (``export.py``)
"""

# The file functions load on first use, so the torch-free readers (tf_graph) stay torch-free.
_FILES = ("FORMATS", "find_weights", "load_weights", "network_keys", "read_weights", "save_weights")


def __getattr__(name: str):
    if name in _FILES:
        from falsr.weights import files

        return getattr(files, name)
    raise AttributeError(f"module 'falsr.weights' has no attribute {name!r}")


__all__ = list(_FILES)

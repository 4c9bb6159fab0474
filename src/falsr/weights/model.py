"""The model configs' target: build a network (falsr.space.network), then load or inherit its weights.

Here, not in the builder, so the search space stays below the weights that fill it (tests/test_imports.py).
"""

from __future__ import annotations

from falsr.errors import UserError
from falsr.space.genome import DEFAULT_SCALE
from falsr.space.network import FALSRNet, build_network


def build_model(genome=None, weights=None, inherit_from=None, scale=None, **build_args) -> FALSRNet:
    """``build_network(genome, scale=..., **build_args)`` (``name``, ``init_std``, ``cells``, ``inputs``), then:

    `scale`: 2, 3 or 4 (the model configs pass ``data.scale`` where the config has one); None: the scale of
    `weights` (so upscale.py and export.py need no scale for a x4 file), else 2, the paper's.
    `weights`: a released FALSR .pb, a falsr .pt or a Lightning .ckpt to load (falsr.weights.files); a file of
    another scale than `scale` is a one-line error.
    `inherit_from`: weights files of parent genomes (primary first) whose same-role tensors it starts
    from (falsr.weights.inherit); what it inherited is left in `net.inheritance`.
    """
    if weights and inherit_from:
        raise UserError("model.weights and model.inherit_from are exclusive: load a whole network or inherit parts")
    if weights:
        from falsr.weights.files import load_weights, open_weights

        weights = open_weights(weights)  # read once: its scale, then its tensors
    if scale is None:
        scale = weights.scale if weights else DEFAULT_SCALE
    net = build_network(genome, scale=scale, **build_args)
    if weights:
        load_weights(net, weights)
    if inherit_from:
        from falsr.weights.inherit import inherit_weights

        net.inheritance = inherit_weights(net, [str(p) for p in inherit_from])
    return net

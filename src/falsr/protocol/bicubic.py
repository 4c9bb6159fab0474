"""The bicubic baseline of SR tables (`python evaluate.py model=bicubic data.scale=S`).

The LR RGB image upscaled by MATLAB's ``imresize(lr, S, 'bicubic')`` (falsr.protocol.resize.imresize: uint8 in,
rounded after each pass, as MATLAB): the upscale behind the published bicubic rows, which tests/test_bicubic.py
reproduces at x2, x3 and x4 on Set5 and Set14.
"""

from __future__ import annotations

import numpy as np

from falsr.errors import UserError
from falsr.protocol.resize import imresize


class Bicubic:
    """A model-like baseline for evaluate.py: no weights, no parameters, any integer scale."""

    def __init__(self, name: str = "Bicubic", weights=None, **network_options):
        """`network_options`: what other configs set on every model (search.py: init_std, ...), unused here."""
        if weights:
            raise UserError(f"model=bicubic has no weights, got model.weights={weights}: drop model.weights")
        self.name = name

    def __getattr__(self, name: str):
        """Anything a network has and this baseline lacks (parameters, genome, ...): model=bicubic outside evaluate.py."""
        if name.startswith("__"):
            raise AttributeError(name)
        raise UserError(
            f"model=bicubic is a baseline for evaluate.py only (it has no {name}): choose a network "
            "model here (model=falsr_a, falsr_b, falsr_c or genome)"
        )

    def upscale(self, lr_rgb: np.ndarray, scale: int) -> np.ndarray:
        """(H, W, 3) uint8 LR RGB -> (sH, sW, 3) uint8 MATLAB-bicubic upscale."""
        return imresize(np.ascontiguousarray(lr_rgb), float(scale))

"""The one network builder: a genome -> the FALSR super-resolution network (Y channel, x2).

Every choice follows the officially released FALSR graphs, so their weights load unchanged:
ReLU everywhere, 'same' padding, grouped convs with contiguous channel groups, inverted bottlenecks
with a linear 1x1 input projection and a residual per block, in-cell skips only with >1 repeat,
the upsampler's global residual from the feature extractor and TensorFlow's DepthToSpace order.
"""

from __future__ import annotations

import torch
from torch import nn

from falsr.space.genome import (
    DEFAULT_SCALE,
    FEATURES,
    HR_FEATURES,
    Cell,
    Genome,
    check_scale,
    model_genome,
    node_channels,
)

# Every ReLU here is in place (torch.relu_) on a fresh convolution output, whose backward does not need it:
# one allocation less per activation made a bf16 training step of FALSR-B ~5% faster on CPU, where the
# elementwise work is a large share of what the bf16 convolutions leave (bench/train_throughput.py).


def conv(cin: int, cout: int, kernel: int, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel, padding=kernel // 2, groups=groups)


class ConvCell(nn.Module):
    """`repeats` x [kxk (group) conv + ReLU]; the first maps the cell input to f channels."""

    def __init__(self, cell: Cell, in_channels: int):
        super().__init__()
        f, k, g = cell.channels, cell.kernel, cell.groups
        self.layers = nn.ModuleList([conv(in_channels if r == 0 else f, f, k, g) for r in range(cell.repeats)])
        self.skip = cell.has_skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = first = torch.relu_(self.layers[0](x))
        for layer in self.layers[1:]:
            x = torch.relu_(layer(x))
        return x + first if self.skip else x


class InvertedResidual(nn.Module):
    """MobileNetV2-style block with expansion 2: x + kxk(2f->f)(ReLU(dw3x3(ReLU(kxk(f->2f)(x)))))."""

    def __init__(self, channels: int, kernel: int):
        super().__init__()
        hidden = 2 * channels
        self.expand = conv(channels, hidden, kernel)
        self.depthwise = conv(hidden, hidden, 3, groups=hidden)
        self.reduce = conv(hidden, channels, kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.reduce(torch.relu_(self.depthwise(torch.relu_(self.expand(x)))))


class InvertedBottleneckCell(nn.Module):
    """A linear 1x1 projection to f channels, then `repeats` inverted-residual blocks."""

    def __init__(self, cell: Cell, in_channels: int):
        super().__init__()
        self.project = conv(in_channels, cell.channels, 1)
        self.blocks = nn.ModuleList([InvertedResidual(cell.channels, cell.kernel) for _ in range(cell.repeats)])
        self.skip = cell.has_skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = first = self.project(x)
        for block in self.blocks:
            x = block(x)
        return x + first if self.skip else x


def build_cell(cell: Cell, in_channels: int) -> nn.Module:
    if cell.op == "invbottleneck_e2":
        return InvertedBottleneckCell(cell, in_channels)
    return ConvCell(cell, in_channels)


def depth_to_space(x: torch.Tensor, block: int) -> torch.Tensor:
    """TensorFlow's DepthToSpace (NHWC order) on NCHW tensors.

    Output pixel (h*b+i, w*b+j, c) reads input channel (i*b+j)*C + c; torch's pixel_shuffle reads
    c*b*b + i*b + j instead, so the released weights need this order.
    """
    n, ch, h, w = x.shape
    c = ch // (block * block)
    x = x.reshape(n, block, block, c, h, w).permute(0, 3, 4, 1, 5, 2)
    return x.reshape(n, c, h * block, w * block)


class Upsampler(nn.Module):
    """3x3 conv to 8*r^2 + ReLU, + the feature extractor's output, DepthToSpace xr, 3x3 conv from 8 to Y.

    At x2 this is FALSR's upsampler (8*4 = 32 channels, the feature extractor's width, so the global residual adds
    the features as they are and the released graphs load exactly). At x3/x4 the 32 features no longer match the
    72/128 channels: a 1x1 conv (`skip`) projects them, the usual choice of sub-pixel SR networks (ESPCN, CARN) for
    a residual across a width change.
    """

    def __init__(self, in_channels: int, scale: int = DEFAULT_SCALE):
        super().__init__()
        self.scale = check_scale(scale)
        width = HR_FEATURES * scale * scale
        self.conv = conv(in_channels, width, 3)
        self.skip = None if width == FEATURES else conv(FEATURES, width, 1)
        self.out = conv(HR_FEATURES, 1, 3)

    def forward(self, x: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        residual = features if self.skip is None else self.skip(features)
        return self.out(depth_to_space(torch.relu_(self.conv(x)) + residual, self.scale))


class FALSRNet(nn.Module):
    """Y-channel SR network of a genome at `scale` (2, 3 or 4): (N, 1, H, W) in [0, 1] -> (N, 1, sH, sW).

    The genome means the same cells at every scale; only the upsampler follows the scale.
    """

    def __init__(
        self, genome: Genome, init_std: float | None = 0.02, name: str | None = None, scale: int = DEFAULT_SCALE
    ):
        super().__init__()
        self.genome = genome
        self.name = name or "custom"
        self.scale = check_scale(scale)
        channels = node_channels(genome)
        self.inputs = [genome.inputs_of(j) for j in range(genome.n_cells + 1)]
        self.head = conv(1, FEATURES, 3)
        self.cells = nn.ModuleList(
            [build_cell(cell, sum(channels[i] for i in self.inputs[j])) for j, cell in enumerate(genome.cell_specs)]
        )
        self.upsampler = Upsampler(sum(channels[i] for i in self.inputs[-1]), scale)
        if init_std is not None:
            self.reset_parameters(init_std)

    def receptive_radius(self) -> int:
        """LR pixels of context each output needs on every side (the longest chain of kxk convs)."""
        radius = [1]  # node 0: the 3x3 feature extractor
        for cell, inputs in zip(self.genome.cell_specs, self.inputs):
            per_repeat = cell.kernel // 2 + (1 + cell.kernel // 2 if cell.op == "invbottleneck_e2" else 0)
            radius.append(max(radius[i] for i in inputs) + cell.repeats * per_repeat)
        # The upsampler's 3x3 conv at LR, then a 3x3 conv at HR (one HR pixel: at most half an LR pixel).
        return max(radius[i] for i in self.inputs[-1]) + 1 + 1

    def reset_parameters(self, std: float = 0.02) -> None:
        """The paper's full-training init: weights ~ N(0, std), biases 0."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, std)
                nn.init.zeros_(m.bias)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        nodes = [torch.relu_(self.head(y))]
        for cell, inputs in zip(self.cells, self.inputs):
            nodes.append(cell(self._gather(nodes, inputs)))
        return self.upsampler(self._gather(nodes, self.inputs[-1]), nodes[0])

    @staticmethod
    def _gather(nodes: list[torch.Tensor], inputs: list[int]) -> torch.Tensor:
        return nodes[inputs[0]] if len(inputs) == 1 else torch.cat([nodes[i] for i in inputs], dim=1)


def build_network(
    genome=None,
    init_std: float | None = 0.02,
    name: str | None = None,
    cells=None,
    inputs=None,
    scale: int = DEFAULT_SCALE,
) -> FALSRNet:
    """Build the network of a genome (a Genome, its string form, JSON or a dict), or of its data form: `cells`
    (names or indices) and `inputs` (the input nodes of every cell, then of the upsampler); `name` labels it;
    `scale`: the upscaling factor (2, 3 or 4).

    Fresh weights only: the model configs' target, falsr.weights.model.build_model, loads or inherits them.
    """
    return FALSRNet(model_genome(genome, cells, inputs), init_std=init_std, name=name, scale=scale)

import random

import numpy as np
import pytest
import torch

from falsr.space.genome import Cell, Genome
from falsr.space.network import InvertedBottleneckCell, build_network, depth_to_space


def test_depth_to_space_follows_tensorflow_order():
    n, c, h, w = 2, 3, 4, 5
    x = torch.randn(n, 4 * c, h, w)
    out = depth_to_space(x, 2).numpy()
    ref = np.zeros((n, c, 2 * h, 2 * w), dtype=np.float32)
    xs = x.numpy()
    for i in range(2):
        for j in range(2):
            for ch in range(c):
                # TF DepthToSpace: output (h*2+i, w*2+j, ch) reads input channel (i*2+j)*C + ch.
                ref[:, ch, i::2, j::2] = xs[:, (i * 2 + j) * c + ch]
    np.testing.assert_array_equal(out, ref)
    assert not torch.equal(depth_to_space(x, 2), torch.nn.functional.pixel_shuffle(x, 2))


def test_output_shape_channels_last_and_batch():
    g = Genome.random(7, random.Random(5))
    net = build_network(g).eval()
    x = torch.rand(3, 1, 17, 11)
    with torch.no_grad():
        y = net(x)
        y_cl = net.to(memory_format=torch.channels_last)(x.to(memory_format=torch.channels_last))
    assert y.shape == (3, 1, 34, 22)
    torch.testing.assert_close(y_cl, y, rtol=1e-4, atol=1e-5)


def test_init_std_and_zero_bias():
    net = build_network(Genome.random(7, random.Random(1)), init_std=0.02)
    weights = torch.cat([m.weight.flatten() for m in net.modules() if isinstance(m, torch.nn.Conv2d)])
    biases = torch.cat([m.bias.flatten() for m in net.modules() if isinstance(m, torch.nn.Conv2d)])
    assert abs(weights.std().item() - 0.02) < 0.001 and torch.count_nonzero(biases) == 0
    default = build_network(Genome.random(7, random.Random(1)), init_std=None)
    assert (
        torch.count_nonzero(torch.cat([m.bias.flatten() for m in default.modules() if isinstance(m, torch.nn.Conv2d)]))
        > 0
    )


@pytest.mark.parametrize("op", ["conv", "gconv4", "invbottleneck_e2"])
def test_residual_flag_acts_only_with_several_repeats(op):
    x = torch.rand(1, 1, 8, 8)

    def out(name):
        torch.manual_seed(0)
        net = build_network(Genome((Cell.from_name(name).index,), (1,)), init_std=0.1).eval()
        with torch.no_grad():
            return net(x)

    torch.testing.assert_close(out(f"{op}_f32_k3_b1_isskip"), out(f"{op}_f32_k3_b1_noskip"))
    assert not torch.allclose(out(f"{op}_f32_k3_b2_isskip"), out(f"{op}_f32_k3_b2_noskip"))


def test_inverted_bottleneck_structure():
    cell = InvertedBottleneckCell(Cell.from_name("invbottleneck_e2_f16_k3_b2_isskip"), 48)
    assert cell.project.kernel_size == (1, 1) and cell.project.in_channels == 48
    block = cell.blocks[0]
    assert block.expand.kernel_size == (3, 3) and block.expand.out_channels == 32
    assert block.depthwise.groups == 32 and block.depthwise.kernel_size == (3, 3)
    assert block.reduce.out_channels == 16


def test_group_conv_uses_contiguous_groups():
    net = build_network(Genome((Cell.from_name("gconv2_f32_k3_b1_noskip").index,), (0,)))
    first = net.cells[0].layers[0]
    assert first.groups == 2 and first.weight.shape == (32, 16, 3, 3)

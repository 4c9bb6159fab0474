import random

import torch
from torch.utils.flop_counter import FlopCounterMode

from falsr.space.cost import genome_cost
from falsr.space.genome import CELL_CHOICES, Genome
from falsr.space.network import build_network


def counted_cost(genome: Genome, h: int, w: int) -> tuple[int, int]:
    """Params and forward mult-adds counted on the built network (FlopCounterMode gives 2 FLOPs per MAC)."""
    net = build_network(genome)
    params = sum(p.numel() for p in net.parameters())
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        out = net(torch.zeros(1, 1, h, w))
    assert out.shape == (1, 1, 2 * h, 2 * w)
    return params, counter.get_total_flops() // 2


def test_cost_model_equals_counted_cost_on_random_genomes():
    rng = random.Random(1234)
    checked = 0
    for n in (1, 2, 3, 5, 7, 9):
        for _ in range(40):
            g = Genome.random(n, rng)
            h, w = rng.randint(3, 9), rng.randint(3, 9)
            assert counted_cost(g, h, w) == (genome_cost(g, (h, w)).params, genome_cost(g, (h, w)).mult_adds), str(g)
            checked += 1
    assert checked >= 200


def test_every_cell_choice_is_counted_exactly():
    rng = random.Random(7)
    for idx in range(len(CELL_CHOICES)):
        g = Genome((idx, rng.randrange(192)), tuple(rng.randint(0, 1) for _ in range(3)))
        c = genome_cost(g, (4, 5))
        assert counted_cost(g, 4, 5) == (c.params, c.mult_adds), CELL_CHOICES[idx].name


def test_mult_adds_scale_with_input_and_default_to_480():
    g = Genome.random(7, random.Random(3))
    assert genome_cost(g).mult_adds == genome_cost(g, 480).mult_adds == genome_cost(g, (10, 10)).mult_adds * 2304
    assert genome_cost(g, (20, 10)).params == genome_cost(g).params


def test_the_cost_model_needs_no_torch():
    """The search's selection, its reports and summaries cost genomes analytically: no torch import behind them."""
    import subprocess
    import sys

    code = "import sys, falsr.space.cost; falsr.space.cost.genome_cost('44.3-10_1'); assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)

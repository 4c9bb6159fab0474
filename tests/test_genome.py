import json
import random
import re

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser

from falsr.space.genome import (
    CELL_CHOICES,
    NUM_CHOICES,
    Cell,
    Genome,
    GenomeError,
    connection_pairs,
    num_connection_bits,
    parse_genome,
)


def test_search_space_has_192_distinct_named_choices():
    assert NUM_CHOICES == 192
    names = [c.name for c in CELL_CHOICES]
    assert len(set(names)) == 192
    # Stable indices: the enumeration order is part of the genome format.
    assert CELL_CHOICES[0].name == "conv_f16_k1_b1_isskip"
    assert CELL_CHOICES[44].name == "conv_f64_k3_b4_isskip"
    assert CELL_CHOICES[191].name == "invbottleneck_e2_f64_k3_b4_noskip"
    for i, c in enumerate(CELL_CHOICES):
        assert c.index == i and Cell.from_name(c.name) == c


def test_released_graph_cell_names_parse():
    assert Cell.from_name("invertBotConE2_f16_k3_b1_isskip").name == "invbottleneck_e2_f16_k3_b1_isskip"
    assert Cell.from_name("groupConG4_f16_k3_b4_noskip").groups == 4
    assert Cell.from_name("groupConG4_f16_k3_b4_noskip").tf_name == "groupConG4_f16_k3_b4_noskip"


@pytest.mark.parametrize("n", [1, 2, 3, 7, 12])
def test_round_trips(n):
    rng = random.Random(n)
    for _ in range(50):
        g = Genome.random(n, rng)
        assert len(g.connections) == n * (n + 1) // 2
        assert Genome.from_string(g.to_string()) == g
        assert Genome.from_json(g.to_json()) == g
        assert Genome.from_dict(json.loads(json.dumps(g.to_dict()))) == g
        assert parse_genome(str(g)) == g
        # Cells may be spelled by name in the string form.
        named = ".".join(c.name for c in g.cell_specs) + "-" + g.to_string().split("-")[1]
        assert Genome.from_string(named) == g


def test_string_is_a_plain_hydra_override_value():
    parser = OverridesParser.create()
    g = Genome.random(7, random.Random(0))
    value = parser.parse_override(f"model.genome={g}").value()
    assert value == str(g) and Genome.from_string(value) == g


def test_connection_semantics():
    n = 3
    assert connection_pairs(n) == [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]
    g = Genome((0, 1, 2), (1, 0, 1, 0, 0, 1))  # string 0.1.2-101_00_1
    assert str(g) == "0.1.2-101_00_1"
    assert g.inputs_of(0) == [0]
    assert g.inputs_of(1) == [0, 1]
    assert g.inputs_of(2) == [2]
    assert g.inputs_of(3) == [0, 2, 3]
    assert Genome.from_cells_and_inputs(list(g.cells), [[0], [0, 1], [2], [0, 2, 3]]) == g


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("1.2-1x1", "only 0, 1"),
        ("1.2-11", "2 cells need 3 connection bits"),
        ("1.2", "expected '<cell>.<cell>...-<connection bits>'"),
        ("1.192-101", "integer 0..191"),
        ("1.conv_f17_k3_b1_isskip-101", "not in the search space"),
        ("1.foo-101", "bad cell name 'foo'"),
        ("-1", "bad cell name ''"),
        ("1.2-1_01", "2 cells need groups of 2/1 bits (one per source node), got 1/2"),  # not read as 10_1
        ("1.2-10_1_", "got 2/1/0"),
        ("1.2.3-10_10_01", "groups of 3/2/1 bits"),
    ],
)
def test_bad_strings_name_the_problem(text, fragment):
    with pytest.raises(GenomeError, match=None) as info:
        Genome.from_string(text)
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_bad_values_rejected():
    with pytest.raises(GenomeError, match="connection bits are 0 or 1"):
        Genome((0,), (2,))
    with pytest.raises(GenomeError, match="at least one cell"):
        Genome((), ())
    with pytest.raises(GenomeError, match="must include node 1"):
        Genome.from_cells_and_inputs([0], [[0], [0]])
    with pytest.raises(GenomeError, match="no genome given"):
        parse_genome(None)


def test_canonical_form_and_key():
    # With one repeat the residual flag builds the same network: same key, same canonical genome.
    a = Genome((Cell.from_name("conv_f16_k3_b1_isskip").index,), (1,))
    b = Genome((Cell.from_name("conv_f16_k3_b1_noskip").index,), (1,))
    assert a != b and a.canonical() == b.canonical() and a.key == b.key
    # With more repeats it matters.
    c = Genome((Cell.from_name("conv_f16_k3_b2_isskip").index,), (1,))
    d = Genome((Cell.from_name("conv_f16_k3_b2_noskip").index,), (1,))
    assert c.key != d.key
    # Keys are stable across processes (no Python hash randomisation) and differ for other genomes.
    assert a.key == Genome.from_string(str(a)).key and len(a.key) == 16
    keys = {Genome.random(5, random.Random(s)).canonical().key for s in range(200)}
    assert len(keys) == 200
    assert num_connection_bits(7) == 28


# -- the search space (conf/space/) ---------------------------------------------------------------------------


def test_the_default_space_is_the_papers_in_its_index_order():
    from falsr.space.genome import FALSR_SPACE, SearchSpace

    assert SearchSpace() == FALSR_SPACE and FALSR_SPACE.choices == CELL_CHOICES and FALSR_SPACE.n_cells == 7
    b = "150.169.1.167.46.107.6-1100010_100011_01110_1000_101_00_1"  # FALSR-B's string reads the same
    assert str(parse_genome(b)) == b and parse_genome(b).cell_specs[0].name == "invbottleneck_e2_f16_k3_b1_isskip"


def test_a_space_with_an_extra_width_and_fewer_cells():
    from falsr.space.cost import genome_cost
    from falsr.space.genome import SearchSpace, using_space
    from falsr.space.network import build_network

    wide = SearchSpace(channels=[16, 32, 48, 64, 96], n_cells=5)
    assert wide.num_choices == 240 and set(CELL_CHOICES) < set(wide.choices)
    with using_space(wide):
        g = Genome.random(rng=random.Random(0))
        assert g.n_cells == 5 and Genome.from_string(str(g)) == g
        cell = Cell.from_name("conv_f96_k3_b2_isskip")
        one = Genome.from_cells_and_inputs([cell], [[0], [0, 1]])
        assert one.cells == (wide.index[cell],) and one.cell_specs == (cell,)
        net = build_network(one)  # the builder and the cost model read the same space
        assert sum(p.numel() for p in net.parameters()) == genome_cost(one).params
        assert net.cells[0].layers[0].out_channels == 96
    with pytest.raises(GenomeError, match="not in the search space"):  # back in the paper's space
        Cell.from_name("conv_f96_k3_b2_isskip")


def test_a_genome_invalid_for_the_space_is_a_one_line_error():
    from falsr.space.genome import SearchSpace, using_space

    with using_space(SearchSpace(ops=["conv"], channels=[16, 32])):  # 2 x 2 x 2 x 3 = 24 choices
        with pytest.raises(GenomeError, match=r"integer 0..23 \(the search space: ops \['conv'\]"):
            parse_genome("150.1-10_1")
        with pytest.raises(GenomeError, match="not in the search space"):
            parse_genome("invbottleneck_e2_f16_k3_b1_isskip.1-10_1")


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"ops": ["conv", "dilated"]}, "unknown op 'dilated'"),
        ({"kernels": [2, 3]}, "space.kernels: 2 is not allowed: use odd positive integers"),
        ({"channels": [16, 30], "ops": ["gconv4"]}, "30 channels cannot be split into the 4 groups of gconv4"),
        ({"repeats": []}, "space.repeats=[]: give a non-empty list"),
        ({"channels": 16}, "space.channels=16: give a list"),
        ({"n_cells": 0}, "space.n_cells=0: use an integer >= 1"),
        ({"residuals": ["yes"]}, "space.residuals: 'yes' is not allowed"),
    ],
)
def test_bad_spaces_name_the_key_and_the_fix(kwargs, fragment):
    from falsr.space.genome import SearchSpace, SpaceError

    with pytest.raises(SpaceError, match=re.escape(fragment)):
        SearchSpace(**kwargs)


def test_genomes_move_between_spaces_by_their_cells():
    from falsr.space.genome import FALSR_SPACE, SearchSpace, translate_genome, using_space

    wide = SearchSpace(channels=[16, 32, 48, 64, 96])
    b = "150.169.1.167.46.107.6-1100010_100011_01110_1000_101_00_1"
    with using_space(wide):
        in_wide = translate_genome(b, FALSR_SPACE)
        names = [c.name for c in parse_genome(in_wide).cell_specs]
    assert in_wide != b  # other indices, ...
    assert names == [c.name for c in parse_genome(b).cell_specs]  # ... the same cells
    assert translate_genome(in_wide, wide) == b  # and back

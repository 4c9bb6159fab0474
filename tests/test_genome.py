import json
import random

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser

from falsr.space.genome import (CELL_CHOICES, NUM_CHOICES, Cell, Genome, GenomeError, connection_pairs,
                          num_connection_bits, parse_genome)


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


@pytest.mark.parametrize("text, fragment", [
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
])
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

import json
import subprocess
import sys

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from falsr.cli import CONF_DIR
from falsr.errors import UserError
from falsr.space.cost import genome_cost
from falsr.space.genome import Genome
from falsr.weights.tf_graph import TFGraph
from falsr.weights.tf_import import genome_from_graph

# Trainable values in the released graphs, and the paper's Table I (params, mult-adds at 480x480).
GRAPH_PARAMS = {"a": 1_021_401, "b": 324_745, "c": 426_569}
PAPER = {"a": (1_021_000, 234.7e9), "b": (326_000, 74.7e9), "c": (408_000, 93.7e9)}


def zoo_model(letter):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="summary", overrides=[f"model=falsr_{letter}"])
    return instantiate(cfg.model)


@pytest.mark.parametrize("letter", "abc")
def test_zoo_configs_build_with_released_sizes(letter):
    net = zoo_model(letter)
    assert net.name == f"FALSR-{letter.upper()}"
    assert sum(p.numel() for p in net.parameters()) == genome_cost(net.genome).params == GRAPH_PARAMS[letter]


@pytest.mark.parametrize("letter", "ab")
def test_a_and_b_match_table_one_within_half_a_percent(letter):
    cost = genome_cost(zoo_model(letter).genome)
    params, macs = PAPER[letter]
    assert abs(cost.params / params - 1) < 0.005
    assert abs(cost.mult_adds / macs - 1) < 0.005


def test_c_paper_figures_are_the_graph_without_one_connection():
    """The released C holds ~427K params; the paper's 408K / 93.7G is C without node 2 -> upsampler."""
    g = zoo_model("c").genome
    inputs = [g.inputs_of(j) for j in range(g.n_cells + 1)]
    assert 2 in inputs[-1]
    inputs[-1] = [i for i in inputs[-1] if i != 2]
    cost = genome_cost(Genome.from_cells_and_inputs(list(g.cells), inputs))
    assert cost.params == 408_137 and round(cost.mult_adds / 1e8) == 937


@pytest.mark.parametrize("letter", "abc")
def test_zoo_genomes_are_read_off_the_released_graphs(letter, pretrained_dir):
    graph = TFGraph(pretrained_dir / f"FALSR-{letter.upper()}.pb")
    assert genome_from_graph(graph) == zoo_model(letter).genome
    assert sum(v.size for v in graph.trainable().values()) == GRAPH_PARAMS[letter]
    # Every trained tensor has a place of the same size in our network.
    ours = sorted(p.numel() for p in zoo_model(letter).parameters())
    assert ours == sorted(v.size for v in graph.trainable().values())


def test_bad_graph_files_get_clear_errors(pretrained_dir, tmp_path):
    truncated = tmp_path / "truncated.pb"
    truncated.write_bytes((pretrained_dir / "FALSR-B.pb").read_bytes()[:100_000])
    with pytest.raises(UserError, match="truncated"):
        TFGraph(truncated)
    text = tmp_path / "notes.pb"
    text.write_text("this is not a graph")
    with pytest.raises(UserError, match="TensorFlow"):
        genome_from_graph(text)
    with pytest.raises(FileNotFoundError, match="not found"):
        TFGraph(tmp_path / "missing.pb")


def run_summary(*args):
    return subprocess.run([sys.executable, "-m", "falsr.summary", *args], capture_output=True, text=True, timeout=120)


def test_summary_cli_prints_table_and_json():
    proc = run_summary("model=falsr_b")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    result = json.loads(lines[-1])
    assert result["params"] == GRAPH_PARAMS["b"] and result["lr_size"] == [480, 480]
    assert any("gconv4_f16_k3_b4_noskip" in line for line in lines)
    small = json.loads(run_summary("model=genome", "model.genome=44.3-10_1", "lr_size=[10,20]").stdout.splitlines()[-1])
    assert small["mult_adds"] == genome_cost("44.3-10_1", (10, 20)).mult_adds


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["model=genome", "model.genome=1.2-1x1"], "bad connection bits"),
        (["model=genome"], "missing required value model.genome"),
        (["model=falsr_x"], "unknown model 'falsr_x': choose one of bicubic, falsr_a, falsr_b, falsr_c, genome"),
        (["model=falsr_a", "lr_size=abc"], "bad lr_size"),
        (["space.foo=1"], "unknown key space.foo: the search space (conf/space/falsr.yaml) has channels"),
        (["space.kernels=[2]"], "space.kernels: 2 is not allowed: use odd positive integers"),
        (
            ["model=falsr_b", "space.channels=[16,32]"],
            "cell 'invbottleneck_e2_f48_k1_b2_isskip' is not in the search space",
        ),
    ],
)
def test_summary_cli_user_errors_are_one_line(args, fragment):
    proc = run_summary(*args)
    assert proc.returncode != 0
    assert proc.stderr.strip().count("\n") == 0 and fragment in proc.stderr, proc.stderr

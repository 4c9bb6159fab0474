"""The evolutionary loop on the toolbox, the ask/tell state, and bit-for-bit resume of its random streams."""

from __future__ import annotations

import io
import json
import math
import random

import numpy as np
import pytest
import torch

from falsr.search.generation import SearchState, evaluate, generation_step, new_search, propose, run_search, tell
from falsr.search.journal import STATUS_OVER_CAP, STATUS_UNDER_FLOOR
from falsr.search.settings import Constraints, SearchSettings, bound_violation
from falsr.search.toolbox import paper_toolbox
from falsr.space.cost import genome_cost
from falsr.space.genome import Genome, SearchSpace, set_space


def toy_psnr(genome: Genome) -> float:
    """A cheap deterministic objective for these tests: more params, more dB, saturating."""
    return 33.0 + 5.0 * (1.0 - math.exp(-genome_cost(genome).params / 3e5))


# No mult-adds cap (the settings' default is the CPU search's 100G): these tests are about the loop itself.
NO_CAP = Constraints(max_mult_adds=None)
SMALL = SearchSettings(population_size=12, constraints=NO_CAP)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(autouse=True)
def five_cells(paper_space):
    """These tests search a 5-cell space (the paper's cell choices)."""
    set_space(SearchSpace(n_cells=5))


def deap_toolbox() -> dict:
    """DEAP's own operators in every entry that draws random numbers: global `random` and NumPy's."""
    config = paper_toolbox()
    config["select"] = {"_target_": "deap.tools.selRandom", "_partial_": True}
    config["mate"] = {"_target_": "deap.tools.cxTwoPoint", "_partial_": True}
    config["mutate"] = {"_target_": "deap.tools.mutFlipBit", "_partial_": True, "indpb": 0.2, "genes": "connections"}
    config["survive"] = {
        "_target_": "falsr.search.nsga.on_log_costs",
        "_partial_": True,
        "selector": {
            "_target_": "deap.tools.selNSGA3",
            "_partial_": True,
            "nd": "standard",
            "ref_points": {"_target_": "deap.tools.uniform_reference_points", "nobj": 3, "p": 4},
        },
    }
    return config


def advance(state: SearchState, generations: int) -> list[list[tuple[str, str]]]:
    batches = []
    for _ in range(generations):
        batch = propose(state)
        batches.append([(o.genome.to_string(), o.origin) for o in batch])
        tell(state, evaluate(batch, toy_psnr, state.settings))
    return batches


def test_generation_step_gives_new_distinct_canonical_genomes():
    state = new_search(SMALL, seed=5)
    advance(state, 3)
    seen_before = set(state.archive)
    batch, actions = generation_step(state)
    keys = [o.genome.key for o in batch]
    assert len(batch) == SMALL.population_size and len(set(keys)) == len(keys)
    assert not set(keys) & seen_before
    assert all(o.genome == o.genome.canonical() and o.genome.n_cells == 5 for o in batch)
    mates, mutations = {"cx_eq4", "copy"}, {"mutation_random", "roulette_mult_adds", "roulette_params", "controller"}
    assert all(
        o.origin == "random" or (o.origin.split("+")[0] in mates and o.origin.split("+")[1] in mutations) for o in batch
    )
    assert {a["key"] for a in actions} >= {o.genome.key for o in batch if o.origin.endswith("+controller")}


def test_plain_nsga2_never_calls_the_controller_and_hybrid_does():
    _, plain = run_search(toy_psnr, SMALL, generations=3, seed=1, use_controller=False)
    _, hybrid = run_search(toy_psnr, SMALL, generations=3, seed=1)
    assert not any("controller" in i.origin for i in plain)
    assert any(i.origin.endswith("+controller") for i in hybrid)
    keeps = SearchSettings(population_size=12, constraints=NO_CAP, controller_keeps_cells=True)
    state, history = run_search(toy_psnr, keeps, generations=3, seed=1)
    assert any(i.origin.endswith("+controller_connections") for i in history) and state.controller.updates == 3
    only_random = SearchSettings(
        population_size=12, constraints=NO_CAP, p_exploration=1.0, p_random_mutation=1.0, p_roulette_mult_adds=0.0
    )
    _, history = run_search(toy_psnr, only_random, generations=2, seed=1, use_controller=False)
    assert {i.origin.split("+")[-1] for i in history[12:]} <= {"mutation_random", "random"}


def test_population_keeps_its_size_and_elitism():
    state = new_search(SMALL, seed=2)
    advance(state, 1)
    best_psnr = max(i.objectives[0] for i in state.population)
    advance(state, 3)
    assert len(state.population) == SMALL.population_size
    assert max(i.objectives[0] for i in state.population) >= best_psnr  # the PSNR extreme is never lost


def test_constraints_steer_the_population_into_the_feasible_region():
    # without redrawing, out-of-bounds genomes enter the batch and constrained domination removes them
    limits = SearchSettings(population_size=12, constraints=Constraints(max_mult_adds=20e9), redraw_out_of_bounds=False)
    state = new_search(limits, seed=4)
    advance(state, 1)
    feasible_at_start = sum(i.fitness.feasible for i in state.population)
    advance(state, 5)
    assert feasible_at_start < SMALL.population_size
    assert all(i.fitness.feasible and i.objectives[1] <= 20e9 for i in state.population)


@pytest.mark.parametrize("redraw", [True, False])
def test_proposals_out_of_a_band_are_drawn_again(redraw):
    # a band holding about a third of random 5-cell genomes (25G-45G at 480x480)
    band = SearchSettings(
        population_size=12, redraw_out_of_bounds=redraw, constraints=Constraints(min_mult_adds=25e9, max_mult_adds=45e9)
    )
    state = new_search(band, seed=3)
    proposed = []
    for _ in range(3):
        batch = propose(state)
        proposed += [genome_cost(o.genome).mult_adds for o in batch]
        assert len(batch) == band.population_size and len({o.genome.key for o in batch}) == len(batch)
        tell(state, evaluate(batch, toy_psnr, state.settings))
    inside = sum(25e9 <= m <= 45e9 for m in proposed)
    if redraw:
        assert inside == len(proposed)
    else:  # the old behaviour: most proposals fall outside and would never be trained
        assert inside < len(proposed) / 2


def test_bound_violation_gives_the_journal_status_and_reason():
    """The one bound check the operators and the driver share: None inside, else what the journal records."""
    genome = Genome.random(5, random.Random(0))
    mult_adds = genome_cost(genome).mult_adds
    assert bound_violation(genome, SearchSettings(constraints=NO_CAP)) is None
    assert bound_violation(genome, SearchSettings(constraints=Constraints(max_mult_adds=mult_adds))) is None
    over = bound_violation(genome, SearchSettings(constraints=Constraints(max_mult_adds=mult_adds - 1)))
    assert over == (STATUS_OVER_CAP, f"mult-adds {mult_adds / 1e9:.1f}G over the cap")
    floor = mult_adds + 1e9
    under = bound_violation(genome, SearchSettings(constraints=Constraints(min_mult_adds=floor, max_mult_adds=None)))
    assert under == (STATUS_UNDER_FLOOR, f"mult-adds {mult_adds / 1e9:.1f}G under the floor {floor / 1e9:.1f}G")


def test_the_search_streams_are_seeded_and_isolated_from_the_global_ones():
    """The operators draw from the global `random` / NumPy generators, but the search's streams are its own:
    what runs between asks and tells (a candidate's training reseeds the globals) changes nothing, and the
    caller's global state is left as it was."""
    quiet = new_search(SMALL, seed=9, toolbox=deap_toolbox())
    expected = advance(quiet, 3)
    noisy = new_search(SMALL, seed=9, toolbox=deap_toolbox())
    got = []
    for k in range(3):
        random.seed(1000 + k)  # as a training job in the same process would
        np.random.seed(1000 + k)
        outside = (random.getstate(), np.random.get_state()[1].copy())
        got.extend(advance(noisy, 1))
        assert random.getstate() == outside[0] and np.array_equal(np.random.get_state()[1], outside[1])
    assert got == expected
    assert advance(new_search(SMALL, seed=10, toolbox=deap_toolbox()), 1) != expected[:1]  # the seed matters


@pytest.mark.parametrize("toolbox", ["paper", "deap"])
@pytest.mark.parametrize("use_controller", [True, False])
def test_checkpointed_generation_resumes_bit_for_bit(use_controller, toolbox):
    config = paper_toolbox() if toolbox == "paper" else deap_toolbox()
    state = new_search(SMALL, seed=9, use_controller=use_controller, toolbox=config)
    advance(state, 3)
    buffer = io.BytesIO()
    torch.save(state.to_dict(), buffer)  # after a tell
    continued = advance(state, 2)
    final = [(i.genome.to_string(), i.objectives) for i in state.population]

    buffer.seek(0)
    resumed = SearchState.from_dict(torch.load(buffer, weights_only=True))
    # DEAP's checkpoint recipe stores the generation just finished and runs it again; here the state counts
    # the generations told, so the resumed search asks for the next one.
    assert resumed.generation == 3
    assert advance(resumed, 2) == continued
    assert [(i.genome.to_string(), i.objectives) for i in resumed.population] == final
    if use_controller:
        for (k, x), (_, y) in zip(
            state.controller.net.state_dict().items(), resumed.controller.net.state_dict().items()
        ):
            assert torch.equal(x, y), k


def test_a_checkpoint_between_ask_and_tell_resumes_with_the_pending_actions():
    settings = SearchSettings(
        population_size=12, constraints=NO_CAP, p_exploration=0.0
    )  # every mutation a controller sample
    state = new_search(settings, seed=3)
    advance(state, 2)
    batch = propose(state)
    assert state.actions
    buffer = io.BytesIO()
    torch.save(state.to_dict(), buffer)  # after an ask: the driver also stores the batch itself
    stats = tell(state, evaluate(batch, toy_psnr, settings))
    buffer.seek(0)
    resumed = SearchState.from_dict(torch.load(buffer, weights_only=True))
    assert resumed.actions == [dict(a) for a in resumed.actions] and len(resumed.actions) == stats["samples"]
    assert tell(resumed, evaluate(batch, toy_psnr, settings)) == stats
    assert advance(resumed, 1) == advance(state, 1)


def test_state_without_controller_is_plain_json():
    state = new_search(SMALL, seed=3, use_controller=False, toolbox=deap_toolbox())
    advance(state, 2)
    text = json.dumps(state.to_dict())
    resumed = SearchState.from_dict(json.loads(text))
    assert advance(resumed, 1) == advance(state, 1)


def test_a_state_from_before_the_toolbox_is_refused_in_one_line():
    from falsr.errors import UserError

    old = {
        "settings": SMALL.to_dict(),
        "rng": [3, [0] * 625, None],
        "controller": None,
        "population": [],
        "generation": 1,
        "seen": [],
    }
    with pytest.raises(UserError, match="earlier falsr"):
        SearchState.from_dict(old)


def test_settings_map_onto_a_structured_config():
    omegaconf = pytest.importorskip("omegaconf")
    cfg = omegaconf.OmegaConf.structured(SearchSettings)
    cfg.crowding = "standard"
    cfg.constraints.max_mult_adds = 1e11
    settings = SearchSettings.from_dict(omegaconf.OmegaConf.to_container(cfg))
    assert settings.crowding == "standard" and settings.constraints.max_mult_adds == 1e11
    assert settings.lr_size == (480, 480)
    with pytest.raises(ValueError):
        SearchSettings(p_exploration=1.5)
    with pytest.raises(ValueError):
        SearchSettings(crowding="fancy")


def width16_penalised(genome: Genome) -> float:
    """toy_psnr, 2 dB lower when the first cell is 16 channels wide: a flaw the costs do not show."""
    return toy_psnr(genome) - (2.0 if genome.cell_specs[0].channels == 16 else 0.0)


def test_children_name_their_parents_from_the_population():
    state = new_search(SMALL, seed=4)
    advance(state, 2)
    population = {ind.genome.key for ind in state.population}
    batch = propose(state)
    assert all(1 <= len(o.parents) <= 2 and set(o.parents) <= population for o in batch if o.origin != "random")
    assert all(o.parents == () for o in propose(new_search(SMALL, seed=4)))  # the initial population has none


def test_prescreening_trains_the_predictors_choice_and_measures_it_held_out():
    def run(factor: int):
        settings = SearchSettings(
            population_size=12,
            constraints=NO_CAP,
            prescreen_factor=factor,
            prescreen_exploration=0.0,
            prescreen_min_trained=12,
        )
        state = new_search(settings, seed=6)
        flawed, qualities = [], []
        for generation in range(5):
            batch = propose(state)
            assert len(batch) == 12 and len({o.genome.key for o in batch}) == 12
            kept = {o.genome.key for o in batch} | set(state.archive) | {i.genome.key for i in state.population}
            assert all(a["key"] in kept for a in state.actions)  # only what is evaluated is rewarded
            evaluated = evaluate(batch, width16_penalised, settings)
            if generation >= 1:
                flawed.append(sum(o.genome.cell_specs[0].channels == 16 for o in batch))
            from falsr.search.generation import predictor_quality

            qualities.append(predictor_quality(batch, evaluated, [True] * len(batch)))
            tell(state, evaluated)
        return flawed, qualities, state

    flawed_plain, q_plain, _ = run(1)
    flawed_screened, q_screened, state = run(4)
    assert all(q is None for q in q_plain)  # nothing predicted without pre-screening
    assert q_screened[0] is None and all(q is not None and q["n"] == 12 for q in q_screened[1:])
    assert sum(flawed_screened) < sum(flawed_plain)  # the predictor learnt the flaw the costs hide
    assert state.genomes and set(state.genomes) == set(state.archive)
    roundtrip = SearchState.from_dict(state.to_dict())
    assert roundtrip.genomes == state.genomes


def test_prescreening_settings_are_checked():
    with pytest.raises(ValueError, match="prescreen_factor"):
        SearchSettings(prescreen_factor=0)
    with pytest.raises(ValueError, match="prescreen_min_trained"):
        SearchSettings(prescreen_min_trained=2)

"""One generation step, the ask/tell loop, and bit-for-bit resume from a checkpointed state."""

from __future__ import annotations

import io
import json
import math
import random

import pytest
import torch

from falsr.cost import genome_cost
from falsr.genome import Genome
from falsr.search.generation import (SearchState, evaluate, generation_step, new_search, propose, run_search,
                                     tell)

from falsr.search.settings import Constraints, SearchSettings


def toy_psnr(genome: Genome) -> float:
    """A cheap deterministic objective for these tests: more params, more dB, saturating."""
    return 33.0 + 5.0 * (1.0 - math.exp(-genome_cost(genome).params / 3e5))


SMALL = SearchSettings(n_cells=5, population_size=12)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


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
    seen_before = set(state.seen)
    batch = generation_step(state.population, random.Random(0), state.controller, SMALL, state.seen)
    keys = [o.genome.key for o in batch]
    assert len(batch) == SMALL.population_size and len(set(keys)) == len(keys)
    assert not set(keys) & seen_before
    assert all(o.genome == o.genome.canonical() and o.genome.n_cells == 5 for o in batch)
    assert {o.origin for o in batch} <= {"mutation_random", "roulette_mult_adds", "roulette_params", "controller",
                                         "controller_connections", "crossover", "copy", "random"}


def test_plain_nsga2_never_calls_the_controller_and_hybrid_does():
    _, plain = run_search(toy_psnr, SMALL, generations=3, seed=1, use_controller=False)
    _, hybrid = run_search(toy_psnr, SMALL, generations=3, seed=1)
    assert "controller" not in {i.origin for i in plain}
    assert "controller" in {i.origin for i in hybrid}
    keeps = SearchSettings(n_cells=5, population_size=12, controller_keeps_cells=True)
    state, history = run_search(toy_psnr, keeps, generations=3, seed=1)
    assert "controller_connections" in {i.origin for i in history} and state.controller.updates == 3
    only_random = SearchSettings(n_cells=5, population_size=12, p_exploration=1.0, p_random_mutation=1.0)
    _, history = run_search(toy_psnr, only_random, generations=2, seed=1, use_controller=False)
    assert {i.origin for i in history[12:]} <= {"mutation_random", "random"}


def test_population_keeps_its_size_and_elitism():
    state = new_search(SMALL, seed=2)
    advance(state, 1)
    best_psnr = max(i.objectives[0] for i in state.population)
    advance(state, 3)
    assert len(state.population) == SMALL.population_size
    assert max(i.objectives[0] for i in state.population) >= best_psnr  # the PSNR extreme is never lost


def test_constraints_steer_the_population_into_the_feasible_region():
    limits = SearchSettings(n_cells=5, population_size=12, constraints=Constraints(max_mult_adds=20e9))
    state = new_search(limits, seed=4)
    advance(state, 1)
    feasible_at_start = sum(i.fitness.feasible for i in state.population)
    advance(state, 5)
    assert feasible_at_start < SMALL.population_size
    assert all(i.fitness.feasible and i.objectives[1] <= 20e9 for i in state.population)


@pytest.mark.parametrize("use_controller", [True, False])
def test_checkpointed_generation_resumes_bit_for_bit(use_controller):
    state = new_search(SMALL, seed=9, use_controller=use_controller)
    advance(state, 3)
    buffer = io.BytesIO()
    torch.save(state.to_dict(), buffer)
    continued = advance(state, 2)
    final = [(i.genome.to_string(), i.objectives) for i in state.population]

    buffer.seek(0)
    resumed = SearchState.from_dict(torch.load(buffer, weights_only=True))
    assert advance(resumed, 2) == continued
    assert [(i.genome.to_string(), i.objectives) for i in resumed.population] == final
    if use_controller:
        for (k, x), (_, y) in zip(state.controller.net.state_dict().items(),
                                  resumed.controller.net.state_dict().items()):
            assert torch.equal(x, y), k


def test_state_without_controller_is_plain_json():
    state = new_search(SMALL, seed=3, use_controller=False)
    advance(state, 2)
    text = json.dumps(state.to_dict())
    resumed = SearchState.from_dict(json.loads(text))
    assert advance(resumed, 1) == advance(state, 1)


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

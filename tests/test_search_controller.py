"""The RL controller: a proper distribution over genomes, REINFORCE on a toy reward, determinism, rewards."""

from __future__ import annotations

import io
import itertools
import math

import pytest
import torch

from falsr.search.controller import RLController, pareto_rank_rewards, scalarised_rewards
from falsr.search.nsga import Individual
from falsr.space.genome import CELL_CHOICES, NUM_CHOICES, Genome, SearchSpace, set_space

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_policy_is_a_distribution_over_genomes():
    controller = RLController(1, seed=3)
    genomes = [Genome((c,), (b,)) for c, b in itertools.product(range(NUM_CHOICES), (0, 1))]
    total = float(controller.log_prob(genomes).detach().exp().sum())
    assert math.isclose(total, 1.0, rel_tol=1e-5)


def test_reinforce_raises_the_probability_of_a_rewarded_connection_pattern():
    n = 4
    target = (1, 0, 1, 1, 0, 0, 1, 0, 1, 1)  # n(n+1)/2 = 10 bits
    controller = RLController(n, learning_rate=0.05, seed=0)
    cells = (3, 50, 100, 150)

    def p_target():
        return math.prod(p if t else 1 - p for p, t in zip(controller.connection_probabilities(cells), target))

    before = p_target()
    for _ in range(40):
        batch = controller.sample(32)
        rewards = [sum(a == b for a, b in zip(g.connections, target)) / len(target) for g in batch]
        controller.update(batch, rewards)
    after = p_target()
    print(f"\np(target connection pattern | cells): {before:.2e} -> {after:.2f}")
    assert before < 0.01 and after > 0.3 and after > 100 * before
    sampled = controller.sample(200)
    assert sum(g.connections == target for g in sampled) > 40  # and sampling follows


def test_reinforce_shifts_cell_choices_towards_rewarded_cells():
    controller = RLController(3, learning_rate=0.05, seed=1)
    cheap = set(range(0, NUM_CHOICES, 4))  # a quarter of the choices
    for _ in range(60):
        batch = controller.sample(32)
        controller.update(batch, [sum(c in cheap for c in g.cells) / 3 for g in batch])
    share = sum(c in cheap for g in controller.sample(300) for c in g.cells) / 900
    assert share > 0.45  # from 0.25 under the initial uniform policy


def test_connections_only_reinforcement_leaves_the_cell_policy_alone():
    controller = RLController(3, learning_rate=0.05, seed=2)
    cells = (10, 20, 30)
    target = (1, 1, 1, 0, 0, 0)
    before = controller.net.cell_logits.detach().clone()
    p_before = sum(p if t else 1 - p for p, t in zip(controller.connection_probabilities(cells), target)) / 6
    for _ in range(20):
        batch = [controller.sample_connections(cells) for _ in range(12)]
        assert all(g.cells == cells for g in batch)
        controller.update(
            batch, [sum(a == b for a, b in zip(g.connections, target)) / 6 for g in batch], [True] * len(batch)
        )
    p_after = sum(p if t else 1 - p for p, t in zip(controller.connection_probabilities(cells), target)) / 6
    assert torch.equal(controller.net.cell_logits.detach(), before)
    assert p_after > 0.8 > p_before


def test_seeded_sampling_and_state_round_trip_are_deterministic():
    a, b = RLController(7, seed=11), RLController(7, seed=11)
    assert a.sample(5) == b.sample(5)
    assert RLController(7, seed=12).sample(5) != RLController(7, seed=11).sample(5)
    batch = a.sample(16)
    a.update(batch, [i / 16 for i in range(16)])
    buffer = io.BytesIO()
    torch.save(a.state_dict(), buffer)
    buffer.seek(0)
    c = RLController.from_state_dict(torch.load(buffer, weights_only=True))
    follow_a, follow_c = a.sample(8), c.sample(8)
    assert follow_a == follow_c
    a.update(follow_a, [1.0] * 4 + [0.0] * 4)
    c.update(follow_c, [1.0] * 4 + [0.0] * 4)
    for (k, x), (_, y) in zip(a.net.state_dict().items(), c.net.state_dict().items()):
        assert torch.equal(x, y), k


def test_pareto_rank_reward_is_one_on_the_first_front():
    def ind(psnr, madds):
        return Individual(Genome((0,), (0,)), (psnr, madds, 1e5))

    population = [ind(36.0, 20e9), ind(37.0, 60e9)]
    offspring = [ind(37.5, 50e9), ind(35.0, 80e9), ind(36.8, 55e9)]  # fronts 0 / 2 / 1
    rewards = pareto_rank_rewards(population, offspring)
    assert rewards == [1.0, 0.0, 0.5]
    scalar = scalarised_rewards(offspring)
    assert scalar[0] > scalar[2] > scalar[1]  # 37.5 dB at 50G beats 36.8 dB at 55G beats 35 dB at 80G


# -- learning inside the search: exactly the sampled actions --------------------------------------------------


def _toy_psnr(genome: Genome) -> float:
    from falsr.space.cost import genome_cost

    return 33.0 + 5.0 * (1.0 - math.exp(-genome_cost(genome).params / 3e5))


def test_the_search_reinforces_the_sampled_actions_not_their_canonical_twins():
    """REINFORCE in the loop is computed on the cells and bits the controller drew (a one-repeat cell with the
    no-op residual flag included), and equals the loss recomputed from those actions by hand."""
    from falsr.search.controller import action_rewards
    from falsr.search.generation import evaluate, new_search, propose, tell
    from falsr.search.settings import SearchSettings

    # every mutation a controller sample; the scalarised reward, as nearly every toy genome is on the first front
    set_space(SearchSpace(n_cells=4))
    settings = SearchSettings(population_size=12, p_exploration=0.0, reward="scalarised")
    state = new_search(settings, seed=7)
    tell(state, evaluate(propose(state), _toy_psnr, settings))
    for step in range(4):
        batch = propose(state)
        actions = list(state.actions)
        sampled = [Genome(tuple(a["cells"]), tuple(a["connections"])) for a in actions]
        assert any(g.canonical() != g for g in sampled)  # about 1 in 6 cells has a canonical twin
        before = RLController.from_state_dict(state.controller.state_dict())
        evaluated = evaluate(batch, _toy_psnr, settings)
        rewards = action_rewards(
            settings.reward, state.population, evaluated, actions, state.archive, settings.constraints
        )
        stats = tell(state, evaluated)
        assert stats["samples"] == len(actions)
        r = torch.tensor(rewards)
        advantage = r - (float(r.mean()) if before.baseline is None else before.baseline)
        with torch.no_grad():
            on_samples = float(-(advantage * before.log_prob(sampled)).mean())
            on_canonical = float(-(advantage * before.log_prob([g.canonical() for g in sampled])).mean())
        assert stats["loss"] == pytest.approx(on_samples, rel=1e-5, abs=1e-7)
        if step == 0:
            # The gradient of REINFORCE on the samples against the one on their canonical twins, by hand on the
            # controller as it was; Adam's first step moves each logit by -lr * sign(gradient).
            grads = []
            for genomes in (sampled, [g.canonical() for g in sampled]):
                logits = before.net.cell_logits
                logits.grad = None
                (-(advantage * before.log_prob(genomes)).mean()).backward()
                grads.append(logits.grad.clone())
            on_samples_grad, on_canonical_grad = grads
            moved = state.controller.net.cell_logits.detach() - before.net.cell_logits.detach()
            clear = on_samples_grad.abs() > 1e-4
            assert clear.any() and torch.equal(torch.sign(moved[clear]), -torch.sign(on_samples_grad[clear]))
            # where the twins' gradient would point elsewhere (the drawn redundant cell vs its twin), the step
            # follows the drawn one
            disagree = clear & (torch.sign(on_samples_grad) != torch.sign(on_canonical_grad))
            assert disagree.any()
            for pos, cell in torch.nonzero(disagree).tolist():
                assert CELL_CHOICES[cell].canonical() != CELL_CHOICES[cell] or any(
                    CELL_CHOICES[g.cells[pos]].canonical().index == cell for g in sampled
                )
        else:
            assert abs(on_canonical - on_samples) > 1e-5  # the canonical genomes would give another update


def test_samples_that_duplicate_evaluated_genomes_are_learned_from_too():
    """A sample that repeats an already evaluated genome is not trained again, but the controller still gets
    its reward (from the recorded objectives) for having drawn it."""
    from falsr.search.generation import evaluate, new_search, propose, tell
    from falsr.search.settings import SearchSettings

    set_space(SearchSpace(n_cells=1))
    settings = SearchSettings(population_size=12, p_exploration=0.0, controller_learning_rate=0.2)
    state = new_search(settings, seed=1)
    tell(state, evaluate(propose(state), _toy_psnr, settings))
    duplicates = 0
    for _ in range(8):
        batch = propose(state)
        actions = list(state.actions)
        keys = {o.genome.key for o in batch}
        revisits = [a for a in actions if a["key"] not in keys]
        assert all(a["key"] in state.archive for a in revisits)  # genomes evaluated in an earlier generation
        made = sum(o.origin.endswith("+controller") for o in batch)
        stats = tell(state, evaluate(batch, _toy_psnr, settings))
        assert stats["samples"] == len(actions) >= made  # every sample, the offspring's and the duplicates'
        duplicates += len(actions) - made
    assert duplicates > 0

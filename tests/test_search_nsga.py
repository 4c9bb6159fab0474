"""Constrained domination, fronts, crowding distances, tournaments, survival and hypervolume on hand-made fronts."""

from __future__ import annotations

import copy
import functools
import math
import pickle
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from falsr.search.nsga import (
    HypervolumeBox,
    Individual,
    assign_crowding,
    assign_rank_and_crowding,
    hypervolume,
    improved_crowding_distance,
    nondominated_fronts,
    on_log_costs,
    sel_crowded_tournament,
    select_survivors,
)
from falsr.search.settings import Constraints
from falsr.space.genome import Genome

G = Genome((0,), (0,))  # the genome does not matter to selection


def ind(psnr, madds, params=1e5, constraints=None, cell=0):
    return Individual(Genome((cell,), (0,)), (psnr, madds, params), constraints)


def test_pareto_domination_uses_the_objective_directions():
    a, b = ind(37.0, 50e9), ind(36.0, 60e9)
    assert a.fitness.dominates(b.fitness) and not b.fitness.dominates(a.fitness)
    c = ind(38.0, 90e9)  # better PSNR, worse cost: a trade-off
    assert not a.fitness.dominates(c.fitness) and not c.fitness.dominates(a.fitness)


def test_feasible_beats_infeasible_and_infeasible_compare_by_violation():
    limits = Constraints(min_psnr=37.0, max_mult_adds=100e9)
    feasible = ind(37.1, 99e9, 9e5, limits)
    brilliant_but_too_costly = ind(38.0, 120e9, 1e5, limits)  # better PSNR and params, 20% over on mult-adds
    slightly_off = ind(36.9, 50e9, 1e5, limits)  # 0.1 dB short: violation 0.0027
    far_off = ind(35.0, 50e9, 1e5, limits)  # 2 dB short: violation 0.054
    assert feasible.fitness.feasible and not brilliant_but_too_costly.fitness.feasible
    assert feasible.fitness.dominates(brilliant_but_too_costly.fitness)
    assert not brilliant_but_too_costly.fitness.dominates(feasible.fitness)
    assert slightly_off.fitness.violation == pytest.approx(0.1 / 37.0)
    assert brilliant_but_too_costly.fitness.violation == pytest.approx(0.2)
    assert slightly_off.fitness.dominates(far_off.fitness) and slightly_off.fitness.dominates(
        brilliant_but_too_costly.fitness
    )
    assert not far_off.fitness.dominates(slightly_off.fitness)
    fronts = nondominated_fronts([far_off, brilliant_but_too_costly, slightly_off, feasible])
    assert [f[0] for f in fronts] == [feasible, slightly_off, far_off, brilliant_but_too_costly]


def test_fronts_of_a_hand_made_population():
    front0 = [ind(36.0, 20e9, 1e5), ind(37.0, 50e9, 1e5), ind(38.0, 200e9, 1e5)]
    front1 = [ind(35.5, 30e9, 1e5), ind(36.5, 60e9, 1e5)]
    front2 = [ind(35.0, 40e9, 1e5)]
    fronts = nondominated_fronts(front2 + front1 + front0)
    assert [set(map(id, f)) for f in fronts] == [set(map(id, f)) for f in (front0, front1, front2)]


def cuboid_front(middle):
    """Two objectives only (params equal): neighbours (PSNR 38, 400G) and (34, 0G) around ``middle``."""
    return [ind(38.0, 400e9), ind(*middle), ind(34.0, 0.0)]


def test_improved_crowding_prefers_the_point_nearer_the_front_where_standard_cannot_tell():
    """Chu & Yu 2018: inside the cuboid of its neighbours Deb's distance is constant, the improved one is not."""
    near = cuboid_front((37.0, 100e9))  # close to the ideal corner (high PSNR, low cost)
    far = cuboid_front((35.0, 300e9))  # same neighbours, far from the ideal corner
    for front in (near, far):
        assign_crowding(front, "standard")
    assert near[1].fitness.crowding_dist == pytest.approx(far[1].fitness.crowding_dist)
    improved_near, improved_far = improved_crowding_distance(near), improved_crowding_distance(far)
    # one-sided gaps to the next worse neighbour in each objective: PSNR (37 - 34) / 4, mult-adds (400 - 100) / 400
    assert improved_near[1] == pytest.approx(3.0 / 4 + 300 / 400)
    assert improved_far[1] == pytest.approx(1.0 / 4 + 100 / 400)
    assert improved_near[1] > improved_far[1]
    better_psnr = cuboid_front((37.5, 100e9))  # moves towards the front: larger improved distance
    worse_psnr = cuboid_front((36.0, 100e9))
    assert improved_crowding_distance(better_psnr)[1] > improved_near[1] > improved_crowding_distance(worse_psnr)[1]
    for front in (better_psnr, worse_psnr):
        assign_crowding(front, "standard")
        assert front[1].fitness.crowding_dist == pytest.approx(near[1].fitness.crowding_dist)
    for d in (improved_near, improved_far):  # boundaries stay infinite, as in Deb's
        assert math.isinf(d[0]) and math.isinf(d[2])


def test_tournament_prefers_rank_then_crowding():
    best = ind(37.0, 50e9, 1e5)
    worse = ind(36.0, 60e9, 2e5)
    random.seed(0)
    assert all(w is best for w in sel_crowded_tournament([best, worse], 50))
    assert [i.fitness.rank for i in (best, worse)] == [0, 1]
    front = [ind(38.0, 400e9), ind(37.9, 390e9), ind(37.0, 100e9), ind(34.0, 1e9)]
    crowded, lonely = front[1], front[2]
    chosen = sel_crowded_tournament(front, 400)  # ranks and (improved) crowding computed on `front`
    assert crowded.fitness.crowding_dist < lonely.fitness.crowding_dist < math.inf
    assert crowded not in chosen and lonely in chosen  # the crowded point loses every tournament it plays


def test_survivors_are_whole_fronts_then_the_least_crowded():
    front0 = [ind(34.0 + k, 10e9 * 2**k, 1e5) for k in range(4)]
    front1 = [ind(34.0 + k - 0.5, 10e9 * 2**k * 1.5, 1e5) for k in range(4)]
    clustered = ind(34.45, 29.7e9, 1e5)  # in front 1, nearly on top of front1[1] = (34.5, 30G)
    survivors = select_survivors(front1 + [clustered] + front0, 6, "standard")
    assert {id(i) for i in front0} <= {id(i) for i in survivors}
    dropped = [i for i in front1 + [clustered] if i not in survivors]
    assert len(dropped) == 3 and (front1[1] in dropped or clustered in dropped)
    assert front1[0] in survivors and front1[3] in survivors  # the boundary points are kept


def test_hypervolume_in_the_documented_box():
    box = HypervolumeBox()
    assert hypervolume([(box.psnr_max, box.mult_adds_min, box.params_min)]) == pytest.approx(1.0)
    assert hypervolume([(box.psnr_min, box.mult_adds_max, box.params_max)]) == pytest.approx(0.0)
    middle = ((box.psnr_min + box.psnr_max) / 2, 10**10.5, box.params_min * 10**1.5)  # the box's centre: 1/8
    assert hypervolume([middle]) == pytest.approx(0.125)
    dominated = (middle[0] - 0.75, 10**11, 1e6)
    assert hypervolume([middle, dominated]) == pytest.approx(0.125)
    other = (middle[0] + 1.25, 10**11, box.params_min * 10**1.5)
    assert hypervolume([middle, other]) > hypervolume([middle])


def test_individuals_pickle_and_copy_with_their_fitness(tmp_path: Path):
    limits = Constraints(min_psnr=37.0)
    a = ind(36.0, 50e9, 1e5, limits)
    assign_rank_and_crowding([a, ind(37.5, 60e9, 1e5, limits)])
    for b in (pickle.loads(pickle.dumps(a)), copy.deepcopy(a)):
        assert b.objectives == a.objectives and b.genome == a.genome
        assert b.fitness.violation == a.fitness.violation > 0
        assert b.fitness.rank == a.fitness.rank == 1
    path = tmp_path / "ind.pkl"
    path.write_bytes(pickle.dumps(a))
    code = (
        "import pickle, sys; a = pickle.load(open(sys.argv[1], 'rb')); "
        "print(a.genome, a.objectives, a.fitness.violation > 0, type(a.fitness).__module__)"
    )
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True)
    assert out.stdout.split()[-2:] == ["True", "falsr.search.nsga"]


@pytest.mark.parametrize("selector", ["spea2", "nsga3"])
def test_deap_selectors_on_log_costs_keep_constrained_domination(selector):
    from deap import tools

    limits = Constraints(max_mult_adds=100e9)
    feasible = [ind(34.0 + k * 0.5, 10e9 * 1.5**k, 1e5 * 1.4**k, limits, cell=k) for k in range(6)]
    infeasible = [ind(38.0, 150e9 + k * 1e9, 1e4, limits, cell=10 + k) for k in range(6)]  # better but over the cap
    if selector == "spea2":
        chosen_by = functools.partial(tools.selSPEA2)
    else:
        chosen_by = functools.partial(tools.selNSGA3, ref_points=tools.uniform_reference_points(3, 4), nd="standard")
    random.seed(0)
    np.random.seed(0)
    chosen = on_log_costs(feasible + infeasible, 6, selector=chosen_by)
    assert sorted(id(i) for i in chosen) == sorted(
        id(i) for i in feasible
    )  # the individuals themselves, feasible first
    chosen = on_log_costs(feasible + infeasible, 8, selector=chosen_by)
    assert len(chosen) == 8 and all(i in chosen for i in feasible)

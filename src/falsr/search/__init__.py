"""Multi-objective architecture search for FALSR: an evolutionary loop on a DEAP toolbox, with the paper's
operators (Eq. 4 crossover, hybrid EA + RL mutation, NSGA-II with improved crowding) as its defaults.

- :mod:`falsr.search.settings`   the schema of the ``search`` node (``SearchConfig``: ``SearchSettings``, ``Constraints``, ``Fidelity``, ``HypervolumeBox``, the paper toolbox), every default
- :mod:`falsr.search.toolbox`    the ``deap.base.Toolbox`` built from the ``toolbox`` node (Hydra targets)
- :mod:`falsr.search.operators`  the genome adapter for DEAP, initialisation, crossovers, mutations, roulette wheel
- :mod:`falsr.search.controller` the RL controller (cell logits + 3 FC layers -> connection sigmoids), REINFORCE
- :mod:`falsr.search.objectives` ``search.objectives``: PSNR and the costs (mult-adds, params, table latency)
- :mod:`falsr.search.nsga`       constrained domination, standard / improved crowding, selectors, hypervolume
- :mod:`falsr.search.generation` the loop (ask / tell), the checkpointable ``SearchState`` and its random streams
- :mod:`falsr.search.predictor`  the performance predictor (gradient boosting) that pre-screens offspring
- :mod:`falsr.search.driver`     the loop driven through Hydra launches: candidate overrides, state file, resume
- :mod:`falsr.search.fidelity`   multi-fidelity promotion (successive halving on NSGA-II's order, ``search.fidelity``)
- :mod:`falsr.search.journal`    ``journal.jsonl``, the search's source of truth
- :mod:`falsr.search.callbacks`  the Hydra callback each job journals itself with (and claims its candidate)
- :mod:`falsr.search.lock`       one search process per sweep folder (a ``flock`` a killed holder never leaves stuck)
- :mod:`falsr.search.report`     ``pareto.json``, ``pareto.md`` and the front plots
- :mod:`falsr.search.hydra_glue` the sweeper's helpers: settings, toolbox, cluster launches, W&B search run
"""

from falsr.search.controller import RLController, action_rewards
from falsr.search.generation import (
    Offspring,
    SearchState,
    evaluate,
    generation_step,
    new_search,
    propose,
    run_search,
    tell,
)
from falsr.search.nsga import (
    HypervolumeBox,
    Individual,
    SRFitness,
    assign_rank_and_crowding,
    hypervolume,
    improved_crowding_distance,
    on_log_costs,
    sel_crowded_tournament,
    sel_nsga2,
    select_survivors,
)
from falsr.search.operators import GeneList, cx_eq4, cx_one_point, mut_hybrid, to_genome
from falsr.search.settings import Constraints, SearchSettings
from falsr.search.toolbox import PAPER_TOOLBOX, build_toolbox

__all__ = [
    "Constraints",
    "GeneList",
    "HypervolumeBox",
    "Individual",
    "Offspring",
    "PAPER_TOOLBOX",
    "RLController",
    "SRFitness",
    "SearchSettings",
    "SearchState",
    "action_rewards",
    "assign_rank_and_crowding",
    "build_toolbox",
    "cx_eq4",
    "cx_one_point",
    "evaluate",
    "generation_step",
    "hypervolume",
    "improved_crowding_distance",
    "mut_hybrid",
    "new_search",
    "on_log_costs",
    "propose",
    "run_search",
    "sel_crowded_tournament",
    "sel_nsga2",
    "select_survivors",
    "tell",
    "to_genome",
]

"""Multi-objective architecture search for FALSR: NSGA-II with a hybrid (EA + RL) mutation controller.

- :mod:`falsr.search.settings`   ``SearchSettings`` / ``Constraints`` (what ``conf/search/nsga2.yaml`` maps onto)
- :mod:`falsr.search.operators`  initialisation, Eq. 4 crossover, random and roulette-wheel mutation, DEAP toolbox
- :mod:`falsr.search.controller` the RL controller (cell logits + 3 FC layers -> connection sigmoids), REINFORCE
- :mod:`falsr.search.nsga`       constrained domination, standard / improved crowding, tournaments, survival, hypervolume
- :mod:`falsr.search.generation` one generation step, ask/tell driver helpers, checkpointable ``SearchState``
"""

from falsr.search.controller import RLController, controller_rewards
from falsr.search.generation import (Offspring, SearchState, evaluate, generation_step, new_search, propose,
                                     run_search, tell, update_controller)
from falsr.search.nsga import (HypervolumeBox, Individual, SRFitness, assign_rank_and_crowding, hypervolume,
                               improved_crowding_distance, select_survivors, tournament_select)
from falsr.search.operators import crossover, init_population, make_toolbox, random_mutation, roulette_mutation
from falsr.search.settings import Constraints, SearchSettings

__all__ = [
    "Constraints", "HypervolumeBox", "Individual", "Offspring", "RLController", "SRFitness", "SearchSettings",
    "SearchState", "assign_rank_and_crowding", "controller_rewards", "crossover", "evaluate", "generation_step",
    "hypervolume", "improved_crowding_distance", "init_population", "make_toolbox", "new_search", "propose",
    "random_mutation", "roulette_mutation", "run_search", "select_survivors", "tell", "tournament_select",
    "update_controller",
]

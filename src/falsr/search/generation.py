"""One generation of the hybrid search, and the search state that checkpoints it bit for bit.

The ask/tell shape suits a driver that evaluates candidates elsewhere (e.g. Hydra launcher jobs):

    state = new_search(settings, seed=0)
    while ...:
        batch = propose(state)                      # Offspring(genome, origin) to evaluate
        evaluated = [Individual(o.genome, objectives_of(o.genome), settings.constraints, o.origin) for o in batch]
        tell(state, evaluated)                      # controller update + NSGA-II survival
        torch.save(state.to_dict(), "search_state.pt")   # resume: SearchState.from_dict(torch.load(...))

:func:`generation_step` is the same step as a plain function of (population, RNG, controller, settings).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Callable, Collection, Optional, Sequence

from falsr.cost import genome_cost
from falsr.genome import Genome
from falsr.search.controller import RLController, controller_rewards
from falsr.search.nsga import Individual, assign_rank_and_crowding, select_survivors, tournament_select
from falsr.search.operators import crossover, exploration_mutation, init_population
from falsr.search.settings import SearchSettings


@dataclass(frozen=True)
class Offspring:
    """A canonical genome to evaluate and the operator that made it (see ``Individual.origin``)."""

    genome: Genome
    origin: str


def _vary(child: Genome, origin: str, rng: random.Random, controller: Optional[RLController],
          settings: SearchSettings) -> tuple[Genome, str]:
    """Mutation of one child: exploration (random / roulette-wheel) or exploitation (a controller sample)."""
    if rng.random() >= settings.mutation_probability:
        return child, origin
    if controller is None or rng.random() < settings.p_exploration:
        return exploration_mutation(child, rng, settings)
    if settings.controller_keeps_cells:
        return controller.sample_connections(child.cells), "controller_connections"
    return controller.sample(1)[0], "controller"


def generation_step(population: Sequence[Individual], rng: random.Random, controller: Optional[RLController],
                    settings: SearchSettings, seen: Collection[str] = ()) -> list[Offspring]:
    """Offspring of an evaluated population: tournaments (k=2 on rank, crowding), Eq. 4 crossover, mutation.

    Returns ``settings.population_size`` canonical genomes that differ from each other, from the population
    and from the keys in ``seen`` (e.g. every genome evaluated so far): a duplicate child is varied again,
    and after ``max_offspring_attempts`` duplicates it is replaced by a uniformly random genome. With
    ``controller=None`` exploitation is off (plain NSGA-II with exploration mutations only).
    """
    population = list(population)
    assign_rank_and_crowding(population, settings.crowding)
    taken = set(seen) | {ind.genome.key for ind in population}
    offspring: list[Offspring] = []
    while len(offspring) < settings.population_size:
        a, b = tournament_select(population, 2, rng)
        if rng.random() < settings.crossover_probability:
            children, origin = crossover(a.genome, b.genome, rng), "crossover"
        else:
            children, origin = (a.genome, b.genome), "copy"
        for child in children:
            if len(offspring) == settings.population_size:
                break
            for _ in range(settings.max_offspring_attempts):
                genome, op = _vary(child, origin, rng, controller, settings)
                if genome.key not in taken:
                    break
            else:
                op = "random"
                while genome.key in taken:
                    genome = Genome.random(settings.n_cells, rng)
            taken.add(genome.key)
            offspring.append(Offspring(genome.canonical(), op))
    return offspring


def update_controller(controller: RLController, population: Sequence[Individual],
                      evaluated: Sequence[Individual], settings: SearchSettings) -> dict:
    """REINFORCE on the evaluated offspring the controller sampled, rewarded against everyone evaluated."""
    rewards = controller_rewards(settings.reward, population, evaluated)
    mine = [(ind, r) for ind, r in zip(evaluated, rewards) if ind.origin in ("controller", "controller_connections")]
    return controller.update([i.genome for i, _ in mine], [r for _, r in mine],
                             [i.origin == "controller_connections" for i, _ in mine])


# -- state ------------------------------------------------------------------------------------------------

def _rng_state_to_list(state) -> list:
    version, internal, gauss = state
    return [version, list(internal), gauss]


def _rng_state_from_list(data) -> tuple:
    version, internal, gauss = data
    return (version, tuple(internal), gauss)


@dataclass
class SearchState:
    """Everything needed to continue a search exactly: settings, population, RNGs, controller, history."""

    settings: SearchSettings
    rng: random.Random
    controller: Optional[RLController]
    population: list[Individual] = field(default_factory=list)
    generation: int = 0  # generations told so far (0: the initial population is next)
    seen: set[str] = field(default_factory=set)  # keys of every genome evaluated so far

    def to_dict(self) -> dict:
        """Plain containers and tensors: ``torch.save``-able, loadable with ``weights_only=True``."""
        return {
            "settings": self.settings.to_dict(),
            "rng": _rng_state_to_list(self.rng.getstate()),
            "controller": None if self.controller is None else self.controller.state_dict(),
            "population": [ind.to_dict() for ind in self.population],
            "generation": self.generation,
            "seen": sorted(self.seen),
        }

    @classmethod
    def from_dict(cls, data: dict) -> "SearchState":
        settings = SearchSettings.from_dict(data["settings"])
        rng = random.Random()
        rng.setstate(_rng_state_from_list(data["rng"]))
        controller = None if data["controller"] is None else RLController.from_state_dict(data["controller"])
        population = [Individual.from_dict(d, settings.constraints) for d in data["population"]]
        return cls(settings, rng, controller, population, data["generation"], set(data["seen"]))


def new_search(settings: SearchSettings, seed: int = 0, use_controller: bool = True) -> SearchState:
    """A fresh search; ``use_controller=False`` gives plain NSGA-II (exploration mutations only)."""
    controller = RLController.from_settings(settings, seed=seed) if use_controller else None
    return SearchState(settings, random.Random(seed), controller)


def propose(state: SearchState) -> list[Offspring]:
    """The next batch to evaluate: the initial population, then each generation's offspring."""
    if state.generation == 0:
        return [Offspring(g.canonical(), "init") for g in init_population(state.settings, state.rng)]
    return generation_step(state.population, state.rng, state.controller, state.settings, state.seen)


def tell(state: SearchState, evaluated: Sequence[Individual]) -> dict:
    """Feed back an evaluated batch: controller update, then elitist NSGA-II survival (parents + offspring)."""
    stats = {}
    if state.generation > 0 and state.controller is not None:
        stats = update_controller(state.controller, state.population, evaluated, state.settings)
    state.population = select_survivors(list(state.population) + list(evaluated),
                                        state.settings.population_size, state.settings.crowding)
    state.seen.update(ind.genome.key for ind in evaluated)
    state.generation += 1
    return stats


def evaluate(batch: Sequence[Offspring], psnr_of: Callable[[Genome], float], settings: SearchSettings) -> list[Individual]:
    """Individuals with objectives (psnr_of(genome), mult-adds, params) from the analytic cost model."""
    out = []
    for item in batch:
        cost = genome_cost(item.genome, settings.lr_size)
        out.append(Individual(item.genome, (float(psnr_of(item.genome)), float(cost.mult_adds), float(cost.params)),
                              settings.constraints, item.origin))
    return out


def run_search(psnr_of: Callable[[Genome], float], settings: SearchSettings, generations: int, seed: int = 0,
               use_controller: bool = True) -> tuple[SearchState, list[Individual]]:
    """A whole in-process search (initial population + ``generations`` more); returns the state and
    every evaluated individual, in order."""
    state = new_search(settings, seed, use_controller)
    history: list[Individual] = []
    for _ in range(generations + 1):
        evaluated = evaluate(propose(state), psnr_of, settings)
        history.extend(evaluated)
        tell(state, evaluated)
    return state, history

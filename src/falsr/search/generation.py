"""The evolutionary loop on a DEAP toolbox, and the search state that checkpoints it bit for bit.

The ask/tell shape suits a driver that evaluates candidates elsewhere (e.g. Hydra launcher jobs):

    state = new_search(settings, seed=0)            # toolbox=None: the paper's operators
    while ...:
        batch = propose(state)                      # Offspring(genome, origin) to evaluate
        evaluated = [Individual(o.genome, objectives_of(o.genome), settings.constraints, o.origin) for o in batch]
        tell(state, evaluated)                      # controller update + survival
        torch.save(state.to_dict(), "search_state.pt")   # resume: SearchState.from_dict(torch.load(...))

**One loop.** :func:`generation_step` calls ``toolbox.select`` (parents), ``toolbox.mate`` (with
``crossover_probability``) and ``toolbox.mutate`` (with ``mutation_probability``); :func:`tell` calls
``toolbox.survive`` on parents + offspring, and the first generation is ``toolbox.population``. What the
toolbox holds comes from the config (:mod:`falsr.search.toolbox`); nothing here calls an operator directly.

**Randomness.** The operators draw from Python's global ``random`` (DEAP's convention) and NumPy's
global generator (DEAP's ``selNSGA3``). The state owns both streams, seeded from the search's seed:
:func:`search_random` swaps them in around every ask and tell and stores them back afterwards, so
whatever else runs in the process (a candidate's training with the basic launcher seeds the globals)
neither disturbs the search nor is disturbed by it. The RL controller samples from its own seeded
``torch.Generator`` (saved with its weights). The driver writes the state after every ask and every
tell, which is DEAP's checkpoint recipe (save ``random.getstate()`` with the population) without its
off-by-one: the recipe stores the number of the generation just finished and restarts its loop at that
number, so that generation runs twice; here ``generation`` counts the generations *told*, a
checkpoint written after a tell resumes with the next ask, and one written after an ask resumes by
evaluating the pending offspring it holds, never by asking again.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from falsr.errors import UserError
from falsr.search.controller import RLController, action_rewards
from falsr.search.nsga import Individual
from falsr.search.objectives import active_objectives
from falsr.search.operators import GeneList, as_gene_list, to_genome
from falsr.search.settings import SearchSettings, bound_violation
from falsr.search.toolbox import build_toolbox, paper_toolbox
from falsr.space.genome import Genome, GenomeError


@dataclass(frozen=True)
class Offspring:
    """A canonical genome to evaluate, the operators that made it (see ``Individual.origin``), the keys of
    the parents it was made from (primary first; none for an initial or random genome: weight inheritance
    reads them) and, when the predictor pre-screened it, its predicted PSNR."""

    genome: Genome
    origin: str
    parents: tuple[str, ...] = ()
    predicted: float | None = None


# -- random streams ----------------------------------------------------------------------------------------


def _python_state_to_list(state) -> list:
    version, internal, gauss = state
    return [version, list(internal), gauss]


def _python_state_from_list(data) -> tuple:
    version, internal, gauss = data
    return (version, tuple(internal), gauss)


def _numpy_state_to_list(state) -> list:
    name, keys, pos, has_gauss, cached = state
    return [name, [int(k) for k in keys], int(pos), int(has_gauss), float(cached)]


def _numpy_state_from_list(data) -> tuple:
    name, keys, pos, has_gauss, cached = data
    return (name, np.asarray(keys, dtype=np.uint32), int(pos), int(has_gauss), float(cached))


@contextlib.contextmanager
def search_random(state: SearchState):
    """Python's and NumPy's global generators set to the search's streams inside, restored outside."""
    outer_python, outer_numpy = random.getstate(), np.random.get_state()
    random.setstate(state.random_state)
    np.random.set_state(state.numpy_state)
    try:
        yield
    finally:
        state.random_state, state.numpy_state = random.getstate(), np.random.get_state()
        random.setstate(outer_python)
        np.random.set_state(outer_numpy)


# -- state ---------------------------------------------------------------------------------------------------


@dataclass
class SearchState:
    """Everything needed to continue a search exactly: settings, toolbox config, population, random
    streams, controller, every evaluated genome's objectives and the controller actions awaiting a reward."""

    settings: SearchSettings
    toolbox_config: dict
    random_state: tuple
    numpy_state: tuple
    controller: RLController | None
    population: list[Individual] = field(default_factory=list)
    generation: int = 0  # generations told so far (0: the initial population is next)
    archive: dict[str, list[float]] = field(default_factory=dict)  # key -> objectives of every evaluated genome
    actions: list[dict] = field(default_factory=list)  # controller samples of the pending batch
    genomes: dict[str, str] = field(default_factory=dict)  # key -> genome string of every evaluated genome
    predictor_log: list[dict] = field(default_factory=list)  # per pre-screened generation: the predictor's quality
    # Multi-fidelity: key -> PSNR at rung 0, the one fidelity every candidate has, the predictor's targets
    # (the archive holds each one at its highest rung; falsr.search.fidelity)
    rung0_psnr: dict[str, float] = field(default_factory=dict)

    def __post_init__(self):
        self.toolbox = build_toolbox(self.toolbox_config, self)

    def to_dict(self) -> dict:
        """Plain containers and tensors: ``torch.save``-able, loadable with ``weights_only=True``."""
        return {
            "settings": self.settings.to_dict(),
            "toolbox": self.toolbox_config,
            "random": _python_state_to_list(self.random_state),
            "numpy_random": _numpy_state_to_list(self.numpy_state),
            "controller": None if self.controller is None else self.controller.state_dict(),
            "population": [ind.to_dict() for ind in self.population],
            "generation": self.generation,
            "archive": {k: list(v) for k, v in self.archive.items()},
            "actions": list(self.actions),
            "genomes": dict(self.genomes),
            "predictor_log": list(self.predictor_log),
            "rung0_psnr": dict(self.rung0_psnr),
        }

    @classmethod
    def from_dict(cls, data: dict) -> SearchState:
        if "toolbox" not in data:
            raise UserError(
                "this search_state.pt was written by an earlier falsr (before the DEAP toolbox loop) "
                "and cannot be continued by this one: finish it with that version or start a new search"
            )
        settings = SearchSettings.from_dict(data["settings"])
        controller = None if data["controller"] is None else RLController.from_state_dict(data["controller"])
        population = [Individual.from_dict(d, settings.constraints) for d in data["population"]]
        return cls(
            settings,
            dict(data["toolbox"]),
            _python_state_from_list(data["random"]),
            _numpy_state_from_list(data["numpy_random"]),
            controller,
            population,
            data["generation"],
            {k: list(v) for k, v in data["archive"].items()},
            list(data["actions"]),
            dict(data.get("genomes", {})),
            list(data.get("predictor_log", [])),
            dict(data.get("rung0_psnr", {})),
        )


def new_search(
    settings: SearchSettings, seed: int = 0, use_controller: bool = True, toolbox: dict | None = None
) -> SearchState:
    """A fresh search: ``toolbox`` is the toolbox config (None: the paper's operators), the random
    streams are seeded from ``seed``; ``use_controller=False`` gives no RL controller (the hybrid
    mutation then always explores: plain NSGA-II)."""
    controller = RLController.from_settings(settings, seed=seed) if use_controller else None
    return SearchState(
        settings,
        paper_toolbox() if toolbox is None else dict(toolbox),
        random.Random(seed).getstate(),
        np.random.RandomState(seed).get_state(),
        controller,
    )


# -- the loop ---------------------------------------------------------------------------------------------


def _genome_of(genes, entry: str, state: SearchState) -> Genome:
    try:
        return to_genome(genes)
    except GenomeError as err:
        raise UserError(
            f"search.toolbox.{entry} ({getattr(state.toolbox, entry).label}) made an invalid genome: {err}"
        ) from None


def _first(result):
    """DEAP's operators return their individuals in a tuple; accept a bare one too."""
    return result[0] if isinstance(result, tuple) else result


def _distinct(genome: Genome, taken: set[str], n_cells: int) -> Genome:
    while genome.key in taken:
        genome = Genome.random(n_cells, random)
    return genome


def _redrawn_initial(genome: Genome, state: SearchState) -> Genome:
    """An initial genome out of bounds drawn again by ``toolbox.population`` (``redraw_out_of_bounds``), up to
    ``max_offspring_attempts`` times; the last draw stays when none is in bounds (it is journaled, untrained)."""
    s = state.settings
    for _ in range(s.max_offspring_attempts if s.redraw_out_of_bounds else 0):
        if bound_violation(genome, s) is None:
            break
        genome = _genome_of(state.toolbox.population(1)[0], "population", state)
    return genome


def initial_population(state: SearchState) -> list[Offspring]:
    """``toolbox.population``; a genome out of the hard bounds is drawn again (``redraw_out_of_bounds``); a
    genome already taken (evaluated, or twice in the batch) is replaced by a uniformly random one."""
    s = state.settings
    genomes = [_genome_of(g, "population", state) for g in state.toolbox.population(s.population_size)]
    if len(genomes) != s.population_size:
        raise UserError(
            f"search.toolbox.population gave {len(genomes)} genomes for a population of {s.population_size}"
        )
    genomes = [_redrawn_initial(g, state) for g in genomes]
    taken = set(state.archive)
    out = []
    for genome in genomes:
        origin = "init" if genome.key not in taken else "random"
        genome = _distinct(genome, taken, s.n_cells)
        taken.add(genome.key)
        out.append(Offspring(genome.canonical(), origin))
    return out


def generation_step(state: SearchState, n: int | None = None) -> tuple[list[Offspring], list[dict]]:
    """One generation's ``n`` offspring (default ``mu``), and the controller actions sampled on the way.

    Parents: ``toolbox.select(population, 2 * ceil(n / 2))``, paired in order. Each pair is mated with
    ``crossover_probability`` (else copied); each child is then mutated with ``mutation_probability``.
    The offspring are canonical genomes that differ from each other and from every genome
    evaluated so far: a duplicate child is mutated again from the same child, and after
    ``max_offspring_attempts`` duplicates it is replaced by a uniformly random genome. A child out of the hard
    bounds (:func:`~falsr.search.settings.bound_violation`) is mutated again the same way (``redraw_out_of_bounds``); when none of the
    draws is in bounds, the first new one stays (the driver journals it, untrained). Every controller
    sample drawn on the way is returned as an action (its cells and bits as sampled, and the key of the
    genome it made), duplicates included, for the controller's update. A child's parents are the pair,
    its own first (Eq. 4 makes child a from parent a with a part of b, and b the other way round).
    """
    s, tb = state.settings, state.toolbox
    mu = s.population_size if n is None else n
    taken = set(state.archive) | {ind.genome.key for ind in state.population}
    parents = list(tb.select(list(state.population), 2 * ((mu + 1) // 2)))
    if len(parents) < 2 * ((mu + 1) // 2):
        raise UserError(
            f"search.toolbox.select ({tb.select.label}) chose {len(parents)} parents, "
            f"{2 * ((mu + 1) // 2)} were asked for"
        )
    offspring: list[Offspring] = []
    actions: list[dict] = []
    for pa, pb in zip(parents[::2], parents[1::2]):
        a, b = GeneList.from_genome(pa.genome), GeneList.from_genome(pb.genome)
        if random.random() < s.crossover_probability:
            a, b = tb.mate(a, b)
            made = tb.mate.label
        else:
            made = "copy"
        for child, lineage in ((a, (pa.genome.key, pb.genome.key)), (b, (pb.genome.key, pa.genome.key))):
            if len(offspring) == mu:
                break
            child = as_gene_list(child)
            fallback = None  # the first new genome out of bounds: kept when no draw is in bounds
            for _ in range(s.max_offspring_attempts):
                trial, origin = tb.clone(child), made
                if random.random() < s.mutation_probability:
                    trial = as_gene_list(_first(tb.mutate(trial)))
                    origin = f"{made}+{trial.origin or tb.mutate.label}"
                genome = _genome_of(trial, "mutate" if "+" in origin else "mate", state)
                if trial.sampled is not None:
                    actions.append({**trial.sampled, "key": genome.key})
                if genome.key not in taken:
                    if not s.redraw_out_of_bounds or bound_violation(genome, s) is None:
                        break
                    fallback = fallback or (genome, origin)
            else:
                if fallback is not None:
                    genome, origin = fallback
                else:
                    origin, lineage = "random", ()
                    genome = _distinct(genome, taken, s.n_cells)
            taken.add(genome.key)
            parents = lineage[:1] if made == "copy" else tuple(dict.fromkeys(lineage))  # a pair may be one twice
            offspring.append(Offspring(genome.canonical(), origin, parents))
    return offspring, actions


def prescreen(state: SearchState, candidates: list[Offspring]) -> list[Offspring]:
    """The ``mu`` of ``candidates`` to train: the predictor's choice plus an exploration share.

    The predictor (:mod:`falsr.search.predictor`, fitted on every genome evaluated so far) gives each
    candidate a predicted PSNR; with its analytic costs, ``toolbox.survive`` (NSGA-II survival by default)
    picks ``mu - round(prescreen_exploration * mu)`` of them as if these were their objectives, and the
    rest of the batch is drawn uniformly from the candidates left (so the predictor never fully decides
    what it later learns from).
    """
    from falsr.search.predictor import PerformancePredictor

    s = state.settings
    mu = s.population_size
    pairs = [(state.genomes[k], state.rung0_psnr.get(k, v[0])) for k, v in state.archive.items() if k in state.genomes]
    predictor = PerformancePredictor(seed=state.generation).fit(pairs)
    predicted = predictor.predict([o.genome for o in candidates])
    guesses = []
    objectives = active_objectives()
    for off, psnr in zip(candidates, predicted):
        guesses.append(
            Individual(
                off.genome, objectives.vector(psnr, objectives.cost_values(off.genome, s)), s.constraints, off.origin
            )
        )
    n_explore = min(mu, int(round(s.prescreen_exploration * mu)))
    chosen = {ind.genome.key for ind in state.toolbox.survive(guesses, mu - n_explore)}
    rest = [o for o in candidates if o.genome.key not in chosen]
    chosen |= {o.genome.key for o in random.sample(rest, min(n_explore, len(rest)))}
    by_key = dict(zip((o.genome.key for o in candidates), predicted))
    return [
        Offspring(o.genome, o.origin, o.parents, float(by_key[o.genome.key]))
        for o in candidates
        if o.genome.key in chosen
    ]


def prescreening(state: SearchState) -> bool:
    """Whether this generation's offspring are pre-screened by the predictor (settings.prescreen_factor > 1,
    not the initial population, and at least ``prescreen_min_trained`` genomes to fit it on)."""
    s = state.settings
    return (
        s.prescreen_factor > 1
        and state.generation > 0
        and sum(k in state.genomes for k in state.archive) >= s.prescreen_min_trained
    )


def propose(state: SearchState) -> list[Offspring]:
    """The next batch to evaluate: the initial population, then each generation's offspring (with
    pre-screening, ``prescreen_factor`` times as many proposed and the predictor's choice kept). The
    controller actions behind the batch wait in ``state.actions`` for :func:`tell`."""
    with search_random(state):
        if state.generation == 0:
            batch, actions = initial_population(state), []
        elif prescreening(state):
            proposed, actions = generation_step(state, state.settings.prescreen_factor * state.settings.population_size)
            batch = prescreen(state, proposed)
        else:
            batch, actions = generation_step(state)
    # only what is evaluated can be rewarded: not the proposals the predictor left, nor the draws out of bounds
    kept = {o.genome.key for o in batch} | set(state.archive) | {i.genome.key for i in state.population}
    state.actions = [a for a in actions if a["key"] in kept]
    return batch


def learn(state: SearchState, evaluated: Sequence[Individual]) -> dict:
    """One REINFORCE step of the controller on exactly the actions it sampled for this batch.

    Each action is rewarded through the genome it made: one of ``evaluated``, or, for a sample that
    duplicated an already evaluated genome, that genome's recorded objectives (``state.archive``, filled
    from the journal by the driver). See :func:`falsr.search.controller.action_rewards`.
    """
    if state.controller is None or not state.actions:
        return {}
    rewards = action_rewards(
        state.settings.reward, state.population, evaluated, state.actions, state.archive, state.settings.constraints
    )
    genomes = [Genome(tuple(a["cells"]), tuple(a["connections"])) for a in state.actions]
    return state.controller.update(genomes, rewards, [bool(a["connections_only"]) for a in state.actions])


def tell(state: SearchState, evaluated: Sequence[Individual]) -> dict:
    """Feed back an evaluated batch: controller update, then survival (``toolbox.survive`` on parents +
    offspring)."""
    with search_random(state):
        stats = learn(state, evaluated)
        survivors = list(
            state.toolbox.survive(list(state.population) + list(evaluated), state.settings.population_size)
        )
    state.population = survivors
    state.archive.update((ind.genome.key, [float(v) for v in ind.objectives]) for ind in evaluated)
    state.genomes.update((ind.genome.key, str(ind.genome)) for ind in evaluated)
    state.actions = []
    state.generation += 1
    return stats


def predictor_quality(
    batch: Sequence[Offspring], evaluated: Sequence[Individual], trained: Sequence[bool]
) -> dict | None:
    """Held-out quality of a pre-screened batch's predictions: Kendall tau and mean absolute error of the
    predicted against the measured PSNR of the candidates that trained (``trained``); None without predictions."""
    pairs = [
        (o.predicted, ind.objectives[0])
        for o, ind, ok in zip(batch, evaluated, trained)
        if ok and o.predicted is not None
    ]
    if len(pairs) < 3:
        return None
    from scipy.stats import kendalltau

    predicted, measured = zip(*pairs)
    return {
        "n": len(pairs),
        "tau": float(kendalltau(predicted, measured).statistic),
        "mae": float(np.mean(np.abs(np.subtract(predicted, measured)))),
    }


def evaluate(
    batch: Sequence[Offspring], psnr_of: Callable[[Genome], float], settings: SearchSettings
) -> list[Individual]:
    """Individuals with objectives (psnr_of(genome), *costs): the search's (falsr.search.objectives)."""
    out, objectives = [], active_objectives()
    for item in batch:
        costs = objectives.cost_values(item.genome, settings)
        out.append(
            Individual(item.genome, objectives.vector(psnr_of(item.genome), costs), settings.constraints, item.origin)
        )
    return out


def run_search(
    psnr_of: Callable[[Genome], float],
    settings: SearchSettings,
    generations: int,
    seed: int = 0,
    use_controller: bool = True,
    toolbox: dict | None = None,
) -> tuple[SearchState, list[Individual]]:
    """A whole in-process search (initial population + ``generations`` more); returns the state and
    every evaluated individual, in order."""
    state = new_search(settings, seed, use_controller, toolbox)
    history: list[Individual] = []
    for _ in range(generations + 1):
        evaluated = evaluate(propose(state), psnr_of, settings)
        history.extend(evaluated)
        tell(state, evaluated)
    return state, history

"""The schema of the ``search`` config node: every search default lives here, and only here.

:class:`SearchConfig` (the whole node: ``seed``, ``generations``, ..., ``settings``, ``hypervolume_box``,
``toolbox``) is registered in Hydra's ConfigStore as ``schema/search`` (as Hydra's Optuna sweeper registers
its settings); ``conf/search.yaml`` puts it at the ``search`` node first, an experiment may then set the
search's scale, and the algorithm (``+search=nsga2|nsga3|spea2|random``) overrides only what differs. A
misspelt key or a mistyped value is therefore a one-line error when the config is composed, not a
silent default.

Values the FALSR paper fixes are marked *paper*; the others are this project's defaults (the paper
names the probabilities but the values used here could not be checked against its text; see the
module docstring of :mod:`falsr.search` and change them in the config, not in code).
"""

# No `from __future__ import annotations`: OmegaConf reads these dataclasses' annotations as types.

import copy
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from falsr.latency import LatencySettings
from falsr.search.journal import STATUS_OVER_CAP, STATUS_OVER_LATENCY, STATUS_UNDER_FLOOR
from falsr.space.cost import DEFAULT_LR_SIZE, Cost, genome_cost
from falsr.space.genome import check_scale

CROWDING_MODES = ("standard", "improved")
REWARDS = ("pareto_rank", "scalarised")


@dataclass
class Constraints:
    """Hard limits, enforced by constrained domination (feasible models always win)."""

    min_psnr: Optional[float] = None  # dB on the search's validation objective
    max_mult_adds: Optional[float] = 100e9  # at `SearchSettings.lr_size`: above it never trained (FALSR-B is 74.5G)
    min_mult_adds: Optional[float] = None  # at `SearchSettings.lr_size`: below it never trained (search one band)
    max_latency_ms: Optional[float] = None  # predicted by the table of `search.latency`: above it never trained

    def __post_init__(self):
        low, high = self.min_mult_adds, self.max_mult_adds
        if low is not None and high is not None and low > high:
            raise ValueError(
                f"constraints.min_mult_adds={low:g} is above max_mult_adds={high:g}: no model can "
                "satisfy both; lower min_mult_adds or raise max_mult_adds"
            )


@dataclass
class SearchSettings:
    # -- population (the search space, its cells and their number, is the `space` config group) ------
    population_size: int = 8  # CPU-sized; the paper's 64 per generation: experiment=falsr_paper
    # The upscaling factor of every candidate: conf/search.yaml sets it to data.scale (the jobs' scale), and lr_size
    # to the scale's LR input for mult-adds (falsr.space.cost.default_lr_size: the paper's 480x480 at x2, the LR
    # of a 1280x720 output at x3/x4); selection, constraints and every job's journaled costs use both.
    scale: int = 2
    lr_size: Tuple[int, int] = DEFAULT_LR_SIZE

    # -- initialisation: categorical draw of each model's connection pattern ------------------
    p_init_random_connections: float = 0.5  # p_r: uniformly random bits
    p_init_dense_connections: float = 0.25  # p_den: all ones; the rest (p_non) all zeros

    # -- variation ------------------------------------------------------------------------------
    # The operators themselves are the toolbox entries of the search config (falsr.search.toolbox); these
    # are the probabilities of the loop and the parameters the paper's operators read.
    crossover_probability: float = 0.9  # per parent pair: toolbox.mate (default Eq. 4), else the parents are copied
    mutation_probability: float = 1.0  # per child: toolbox.mutate (default the hybrid mutation below)
    p_exploration: float = 0.5  # hybrid mutation: exploration (random / roulette-wheel); else exploitation (RL)
    # Exploration is the paper's categorical choice, one draw p in [0, 1): random mutation for p < p_mr,
    # roulette wheel by mult-adds for p_mr <= p < p_mr + p_mf, roulette wheel by params otherwise (the paper's
    # objectives; the wheels follow search.objectives: falsr.search.operators.roulette_branches).
    p_random_mutation: float = 0.5  # p_mr
    p_roulette_mult_adds: float = 0.25  # p_mf; p_mp = 1 - p_mr - p_mf (roulette by params)
    roulette_pressure: float = 4.0  # beta: a cell's wheel weight is exp(-beta u), u its log cost scaled to [0, 1]
    random_mutation_cell_probability: Optional[float] = None  # per cell; None: 1/n
    random_mutation_bit_probability: Optional[float] = None  # per bit; None: 1/(n(n+1)/2)
    max_offspring_attempts: int = 50  # re-draws per child before a duplicate is replaced by a random genome
    # A proposed genome whose analytic costs break a hard bound (constraints.min/max_mult_adds, max_latency_ms)
    # is drawn again (up to max_offspring_attempts times; an initial genome by toolbox.population) instead of
    # taking a place in the batch untrained. False: kept, journaled as never trained (docs/search.md says what
    # that cost a band search).
    redraw_out_of_bounds: bool = True

    # -- performance predictor (falsr.search.predictor): pre-screening of offspring -------------------
    # offspring proposed per one trained, the predictor's choice trained; 1: off (random search). 4: measured
    # (README, Search efficiency)
    prescreen_factor: int = 4
    prescreen_exploration: float = 0.25  # share of the batch drawn uniformly from the proposals the predictor left
    prescreen_min_trained: int = 16  # genomes evaluated before the predictor is fitted and used

    # -- selection ------------------------------------------------------------------------------
    crowding: str = "improved"  # "standard" (Deb 2002) or "improved" (Chu & Yu 2018, used by FALSR)
    constraints: Constraints = field(default_factory=Constraints)

    # -- RL controller (exploitation) ----------------------------------------------------------
    controller_embedding_dim: int = 16
    controller_hidden_units: int = 64
    controller_learning_rate: float = 0.01
    controller_baseline_decay: float = 0.8  # exponential moving average of the batch reward
    reward: str = "pareto_rank"  # "pareto_rank" or "scalarised" (see controller.py)
    # False: exploitation replaces the child by a whole controller sample (cells and connections);
    # True: it keeps the child's cells and draws only the connections from the controller given them.
    controller_keeps_cells: bool = False

    def __post_init__(self):
        if isinstance(self.constraints, dict):
            self.constraints = Constraints(**self.constraints)
        self.lr_size = tuple(int(v) for v in self.lr_size)
        check_scale(self.scale)
        probs = {k: v for k, v in asdict(self).items() if k.startswith("p_") or k.endswith("_probability")}
        for name, value in probs.items():
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f"search setting {name}={value} is a probability: use a value in [0, 1]")
        if self.p_init_random_connections + self.p_init_dense_connections > 1.0 + 1e-12:
            raise ValueError(
                "p_init_random_connections + p_init_dense_connections must not exceed 1 "
                "(the rest is the probability of no connections)"
            )
        if self.p_random_mutation + self.p_roulette_mult_adds > 1.0 + 1e-12:
            raise ValueError(
                f"p_random_mutation + p_roulette_mult_adds = {self.p_random_mutation} + "
                f"{self.p_roulette_mult_adds} must not exceed 1: both are probabilities of the whole "
                "exploration draw (the rest is the roulette wheel by params); lower one of them"
            )
        if self.roulette_pressure < 0:
            raise ValueError(f"roulette_pressure={self.roulette_pressure}: use a value >= 0 (0: a uniform wheel)")
        if self.crowding not in CROWDING_MODES:
            raise ValueError(f"crowding={self.crowding!r}: use one of {list(CROWDING_MODES)}")
        if self.reward not in REWARDS:
            raise ValueError(f"reward={self.reward!r}: use one of {list(REWARDS)}")
        if self.prescreen_factor < 1:
            raise ValueError(f"prescreen_factor={self.prescreen_factor}: use an integer >= 1 (1: no pre-screening)")
        if self.prescreen_min_trained < 4:
            raise ValueError(f"prescreen_min_trained={self.prescreen_min_trained}: the predictor needs at least 4")
        if self.population_size < 2:
            raise ValueError(f"population_size={self.population_size}: use 2 or more")

    @property
    def n_cells(self) -> int:
        """Cells per network: the search space's (``space.n_cells``)."""
        from falsr.space.genome import active_space

        return active_space().n_cells

    @property
    def cell_mutation_probability(self) -> float:
        p = self.random_mutation_cell_probability
        return 1.0 / self.n_cells if p is None else p

    @property
    def bit_mutation_probability(self) -> float:
        p = self.random_mutation_bit_probability
        return 1.0 / (self.n_cells * (self.n_cells + 1) // 2) if p is None else p

    def to_dict(self) -> dict:
        return asdict(self)

    def cost(self, genome) -> Cost:
        """A genome's params and mult-adds as this search counts them (its scale, at its lr_size)."""
        return genome_cost(genome, self.lr_size, self.scale)

    @classmethod
    def from_dict(cls, data: dict) -> "SearchSettings":
        return cls(**dict(data))


def bound_violation(genome, settings: SearchSettings) -> Optional[Tuple[str, str]]:
    """None when the genome's analytic costs meet the hard bounds, else its journal (status, reason): one check
    for the operators that redraw such a genome and the driver that journals it untrained. Over the mult-adds cap
    wins over the latency cap, which wins over the floor; latency is read from the table only where it decides."""
    c = settings.constraints
    if c.max_mult_adds is None and c.min_mult_adds is None and c.max_latency_ms is None:
        return None
    mult_adds = settings.cost(genome).mult_adds
    if c.max_mult_adds is not None and mult_adds > c.max_mult_adds:
        return STATUS_OVER_CAP, f"mult-adds {mult_adds / 1e9:.1f}G over the cap"
    if c.max_latency_ms is not None:
        from falsr.search.objectives import active_objectives  # the process's objectives hold the latency table

        latency = active_objectives().latency_ms(genome)
        if latency > c.max_latency_ms:
            return STATUS_OVER_LATENCY, f"predicted latency {latency:.1f} ms over the cap {c.max_latency_ms:g} ms"
    if c.min_mult_adds is not None and mult_adds < c.min_mult_adds:
        return STATUS_UNDER_FLOOR, f"mult-adds {mult_adds / 1e9:.1f}G under the floor {c.min_mult_adds / 1e9:.1f}G"
    return None


@dataclass
class HypervolumeBox:
    """The objective box the hypervolume is measured in; its worst corner is the reference point.

    Every objective is mapped to [0, 1] in minimisation form and clipped: PSNR linearly,
    u = (psnr_max - psnr) / (psnr_max - psnr_min); mult-adds and params on a log scale,
    u = log(x / x_min) / log(x_max / x_min). The reference point is (1, 1, 1), i.e. (psnr_min, mult_adds_max,
    params_max); a model outside the box on any side contributes nothing there, so the
    hypervolume is in [0, 1]. Defaults: PSNR 20 dB (short CPU budgets end below bicubic, 33.64 dB on Set5;
    raise it for long budgets) to 38.5 dB (above every model in the paper's Table I); mult-adds 1G to 1000G
    and params 5K to 5M at 480x480, which cover the 7-cell FALSR space (1.3G..1014G, 5.7K..4.4M) on a scale
    where halving a cost counts the same everywhere.
    """

    psnr_min: float = 20.0
    psnr_max: float = 38.5
    mult_adds_min: float = 1e9
    mult_adds_max: float = 1e12
    params_min: float = 5e3
    params_max: float = 5e6
    latency_min: float = 1.0  # ms, log scale like the other costs (search.objectives with latency)
    latency_max: float = 1e4

    def normalise(self, objectives: Iterable[Sequence[float]], names: Optional[Sequence[str]] = None):
        """Points of the objectives `names` (None: the search's, falsr.search.objectives) in [0, 1]^k."""
        import numpy as np

        if names is None:
            from falsr.search.objectives import active_objectives

            names = active_objectives().names
        pts = np.asarray([tuple(o) for o in objectives], dtype=float).reshape(-1, len(names))
        out = np.empty_like(pts)
        for m, name in enumerate(names):
            if name == "psnr":
                out[:, m] = (self.psnr_max - pts[:, m]) / (self.psnr_max - self.psnr_min)
            else:
                low, high = getattr(self, f"{name}_min"), getattr(self, f"{name}_max")
                out[:, m] = np.log(np.maximum(pts[:, m], 1e-300) / low) / math.log(high / low)
        return np.clip(out, 0.0, 1.0)


# The paper's operators: the default ``toolbox`` node (falsr.search.toolbox documents each entry).
PAPER_TOOLBOX: Dict[str, Dict[str, Any]] = {
    "population": {"_target_": "falsr.search.operators.init_single_cell", "_partial_": True},
    "select": {"_target_": "falsr.search.nsga.sel_crowded_tournament", "_partial_": True},
    "mate": {"_target_": "falsr.search.operators.cx_eq4", "_partial_": True, "genes": "all"},
    "mutate": {"_target_": "falsr.search.operators.mut_hybrid", "_partial_": True, "genes": "all"},
    "survive": {"_target_": "falsr.search.nsga.sel_nsga2", "_partial_": True},
}


@dataclass
class Fidelity:
    """Multi-fidelity promotion (successive halving, :mod:`falsr.search.fidelity`): every candidate trains to
    ``rungs[0]`` steps; after each generation the best 1/``eta`` of each rung (non-dominated rank, then
    crowding distance) continue from their own checkpoint to the next rung. Empty ``rungs``: one fidelity,
    the budget's ``trainer.max_steps`` (the default search, unchanged)."""

    rungs: List[int] = field(default_factory=list)  # training steps per rung, strictly increasing, e.g. [100, 300]
    eta: int = 3  # the top 1/eta of a rung is promoted (successive halving's usual 3)

    def __post_init__(self):
        self.rungs = [int(r) for r in (self.rungs or [])]
        shown = "[" + ",".join(str(r) for r in self.rungs) + "]"
        if self.rungs and len(self.rungs) < 2:
            raise ValueError(
                f"search.fidelity.rungs={shown}: give two or more rungs (e.g. [100,300]), or [] for "
                "one fidelity (trainer.max_steps)"
            )
        if any(r <= 0 for r in self.rungs) or any(b <= a for a, b in zip(self.rungs, self.rungs[1:])):
            raise ValueError(
                f"search.fidelity.rungs={shown}: rungs are training steps, positive and strictly "
                "increasing, e.g. [100,300]"
            )
        if int(self.eta) != self.eta or self.eta < 2:
            raise ValueError(
                f"search.fidelity.eta={self.eta}: use an integer >= 2 (the top 1/eta of a rung is promoted to the next)"
            )
        self.eta = int(self.eta)

    @property
    def enabled(self) -> bool:
        return bool(self.rungs)


@dataclass
class SearchConfig:
    """The whole ``search`` node (``python search.py +search=nsga2``); ``conf/search/*.yaml`` override it."""

    seed: int = 0
    generations: int = 2  # after the initial population: population x (generations + 1) candidates at most
    use_controller: bool = True  # false: no RL controller (the hybrid mutation always explores: plain NSGA-II)
    resume: Optional[str] = None  # a sweep folder (multirun/search/...) to continue after a crash or kill
    # with resume, used only where search_state.pt is damaged or missing: a new population by NSGA-II survival
    # over the journal's candidates (none trained again), continuing at the generation after the last journaled one
    resume_from_journal: bool = False
    job_timeout_s: Optional[float] = None  # a candidate job still running after this many seconds fails ("timed out")
    # psnr and the costs it is traded against: mult_adds, params, latency (the table of `latency`), e.g. [psnr,latency]
    objectives: List[str] = field(default_factory=lambda: ["psnr", "mult_adds", "params"])  # paper
    # how latency is measured for the latency objective / constraint (backend, precision, threads, lr_size, ...):
    # its table (python -m falsr.latency profile ...) must exist before the search starts
    latency: LatencySettings = field(default_factory=LatencySettings)
    # with latency an objective: the final front measured end to end under `latency` once the search ends (the table
    # predicted it), written to front_latency.json / .md beside pareto.json
    measure_front: bool = True
    report_k: int = 4  # models chosen by crowding distance on the PSNR / mult-adds front (paper: 4)
    # What a candidate is ranked by: "final", the held-out PSNR at the end of its training (with budget=search, the
    # best estimator at the proxy's cost in bench/proxy_fidelity.py; README, The evaluator), or "extrapolated", its
    # held-out curve extrapolated to estimate_at steps (the best with budget=search_p300, the budget before;
    # showdown_a/b and latency_search pin it). With "extrapolated" the measured PSNR is journaled beside it.
    estimator: str = "final"
    estimate_at: int = 2000  # steps: the evaluator's reference (p2000, docs/evaluator.md); showdown_a/b pin 1000
    # weight inheritance: a child starts from its parents' trained tensors (falsr.weights.inherit)
    inherit: bool = False
    full_train: bool = False  # true: train the chosen models fully through the same launcher at the end
    full_train_overrides: List[str] = field(default_factory=lambda: ["budget=full"])  # added to each such job
    settings: SearchSettings = field(default_factory=SearchSettings)
    fidelity: Fidelity = field(default_factory=Fidelity)  # multi-fidelity promotion; default: one fidelity
    hypervolume_box: HypervolumeBox = field(default_factory=HypervolumeBox)  # of the reported hypervolume
    toolbox: Dict[str, Any] = field(default_factory=lambda: copy.deepcopy(PAPER_TOOLBOX))


def check_search_overrides(argv: Sequence[str]) -> None:
    """A misspelt or mistyped ``search.*`` override of `argv` is a one-line :class:`~falsr.errors.UserError`.

    Hydra rejects them too, but in several lines; this schema is where every search key and its type is defined.
    The toolbox entries are free-form (any DEAP operator's arguments).
    """
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from falsr.errors import UserError

    for arg in argv:
        if not arg.startswith("search.") or "=" not in arg or arg.startswith("search.toolbox."):
            continue
        key, _, value = arg.partition("=")
        try:
            OmegaConf.merge(OmegaConf.structured(SearchConfig), OmegaConf.from_dotlist([f"{key[7:]}={value}"]))
        except OmegaConfBaseException as err:
            reason = str(err).splitlines()[0]
            raise UserError(
                f"{arg}: {reason} (every search key, its type and default: falsr.search.settings)"
            ) from None


def register_configs() -> None:
    """``schema/search`` in Hydra's ConfigStore: the typed ``search`` node conf/search.yaml starts from."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(group="schema", name="search", node=SearchConfig, package="search", provider="falsr")


register_configs()

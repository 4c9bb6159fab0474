"""Search settings: one dataclass a Hydra config (`conf/search/nsga2.yaml`) maps onto field by field.

Values the FALSR paper fixes are marked *paper*; the others are this project's defaults (the paper
names the probabilities but the values used here could not be checked against its text; see the
module docstring of :mod:`falsr.search` and change them in the config, not in code).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Optional, Tuple

CROWDING_MODES = ("standard", "improved")
REWARDS = ("pareto_rank", "scalarised")


@dataclass
class Constraints:
    """Hard limits, enforced by constrained domination (feasible models always win)."""

    min_psnr: Optional[float] = None  # dB on the search's validation objective
    max_mult_adds: Optional[float] = None  # at `SearchSettings.lr_size`, e.g. 100e9


@dataclass
class SearchSettings:
    # -- search space and population --------------------------------------------------------
    n_cells: int = 7  # paper: the released FALSR-A/B/C graphs all have 7 cells
    population_size: int = 64  # paper: 64 models per generation (recalled, not re-checked against the text)
    lr_size: Tuple[int, int] = (480, 480)  # LR input for mult-adds (paper's convention)

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
    # roulette wheel by mult-adds for p_mr <= p < p_mr + p_mf, roulette wheel by params otherwise.
    p_random_mutation: float = 0.5  # p_mr
    p_roulette_mult_adds: float = 0.25  # p_mf; p_mp = 1 - p_mr - p_mf (roulette by params)
    roulette_pressure: float = 4.0  # beta: a cell's wheel weight is exp(-beta u), u its log cost scaled to [0, 1]
    random_mutation_cell_probability: Optional[float] = None  # per cell; None: 1/n
    random_mutation_bit_probability: Optional[float] = None  # per bit; None: 1/(n(n+1)/2)
    max_offspring_attempts: int = 50  # re-draws per child before a duplicate is replaced by a random genome

    # -- performance predictor (falsr.search.predictor): pre-screening of offspring -------------------
    prescreen_factor: int = 1  # offspring proposed per one trained; 1: no pre-screening (default: see README)
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
        probs = {k: v for k, v in asdict(self).items() if k.startswith("p_") or k.endswith("_probability")}
        for name, value in probs.items():
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f"search setting {name}={value} is a probability: use a value in [0, 1]")
        if self.p_init_random_connections + self.p_init_dense_connections > 1.0 + 1e-12:
            raise ValueError("p_init_random_connections + p_init_dense_connections must not exceed 1 "
                             "(the rest is the probability of no connections)")
        if self.p_random_mutation + self.p_roulette_mult_adds > 1.0 + 1e-12:
            raise ValueError(f"p_random_mutation + p_roulette_mult_adds = {self.p_random_mutation} + "
                             f"{self.p_roulette_mult_adds} must not exceed 1: both are probabilities of the whole "
                             "exploration draw (the rest is the roulette wheel by params); lower one of them")
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
        if self.n_cells < 1 or self.population_size < 2:
            raise ValueError("n_cells must be >= 1 and population_size >= 2")

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

    @classmethod
    def from_dict(cls, data: dict) -> "SearchSettings":
        return cls(**dict(data))

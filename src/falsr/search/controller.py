"""The RL half of FALSR's hybrid controller: a policy over whole genomes trained with REINFORCE.

Policy (as the paper describes it): per-position cell logits give a categorical distribution over the
the search space's choices (192 in the paper's) for each of the n cells; the embeddings of the sampled cells are concatenated and passed
through 3 fully connected layers whose last layer has n(n+1)/2 sigmoid outputs, one Bernoulli
probability per connection bit. log pi(genome) = sum of the cell log-softmaxes + sum of the bit
log-likelihoods, so any genome (not only a sampled one) has a probability under the policy.

Training (the paper's Eq. 6): a genome is one episode of n + n(n+1)/2 actions with a single terminal
reward R; with discount gamma = 1 the accumulated reward of every action is R, so
grad J = mean_k sum_t grad log pi(a_t | a_<t) (R_k - b) = mean_k grad log pi(genome_k) (R_k - b),
with b an exponential moving average of past batch rewards (variance reduction, no bias). One Adam
step per generation on exactly the actions the controller sampled during that generation (REINFORCE is
on-policy; offspring of the other operators were not drawn from pi): the cells and bits as drawn, not
the canonical genome the search evaluates (a one-repeat cell with the no-op residual flag has a
canonical twin the policy did not choose), and every sample, also one that duplicated an already
evaluated genome and so was not trained again (its reward comes from that genome's recorded objectives).

Reward (``reward="pareto_rank"``, the default): 1 - rank / (number of fronts - 1), where rank is the
model's non-domination rank (0 = first front) among the parent population together with all evaluated
offspring (and the earlier genomes that samples duplicated), using the same constrained domination as
selection. Why: it is scale-free (no weights
between dB, mult-adds and params to tune, and it does not drift as the population improves), it
rewards a model for being good anywhere along the front rather than at one trade-off point, it is
exactly what NSGA-II's survival uses, so the controller learns to propose models that survive, and
constraints come with it (infeasible models rank behind feasible ones). ``reward="scalarised"`` is
the alternative: (1 - u_psnr) - 0.5 u_mult_adds - 0.5 u_params - violation, with the u's the
hypervolume box's [0, 1] normalisation (PSNR linear, costs on a log scale).

Seedable and deterministic on CPU: weights are initialised under a forked, seeded global RNG and all
sampling uses the controller's own ``torch.Generator``, whose state is saved with the weights and the
optimiser.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from falsr.search.nsga import HypervolumeBox, Individual, nondominated_fronts
from falsr.space.genome import Genome, active_space, num_connection_bits


class ControllerNet(nn.Module):
    def __init__(self, n_cells: int, embedding_dim: int = 16, hidden_units: int = 64, num_choices: int = 192):
        super().__init__()
        self.n_cells = n_cells
        self.cell_logits = nn.Parameter(torch.zeros(n_cells, num_choices))  # uniform at the start
        self.embedding = nn.Embedding(num_choices, embedding_dim)
        self.connections = nn.Sequential(
            nn.Linear(n_cells * embedding_dim, hidden_units),
            nn.ReLU(),
            nn.Linear(hidden_units, hidden_units),
            nn.ReLU(),
            nn.Linear(hidden_units, num_connection_bits(n_cells)),
        )

    def connection_logits(self, cells: torch.Tensor) -> torch.Tensor:
        """Logits of the connection bits given cells (batch, n) -> (batch, n(n+1)/2); sigmoid gives p."""
        return self.connections(self.embedding(cells).flatten(1))

    def log_prob(self, cells: torch.Tensor, bits: torch.Tensor, connections_only: bool = False) -> torch.Tensor:
        """log pi(genome) for a batch of cells (batch, n) and bits (batch, n(n+1)/2), or only the bits' part."""
        bit_lp = -nn.functional.binary_cross_entropy_with_logits(
            self.connection_logits(cells), bits.float(), reduction="none"
        ).sum(1)
        if connections_only:
            return bit_lp
        cell_lp = torch.log_softmax(self.cell_logits, dim=-1)  # (n, choices)
        return cell_lp.gather(1, cells.t()).t().sum(1) + bit_lp


class RLController:
    """Samples genomes and learns from their rewards (see the module docstring)."""

    def __init__(
        self,
        n_cells: int,
        embedding_dim: int = 16,
        hidden_units: int = 64,
        learning_rate: float = 0.01,
        baseline_decay: float = 0.8,
        seed: int = 0,
        num_choices: int | None = None,
    ):
        num_choices = active_space().num_choices if num_choices is None else num_choices
        self.config = dict(
            n_cells=n_cells,
            embedding_dim=embedding_dim,
            hidden_units=hidden_units,
            learning_rate=learning_rate,
            baseline_decay=baseline_decay,
            seed=seed,
            num_choices=num_choices,
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.net = ControllerNet(n_cells, embedding_dim, hidden_units, num_choices)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=learning_rate)
        self.generator = torch.Generator().manual_seed(seed)
        self.baseline: float | None = None
        self.updates = 0

    @classmethod
    def from_settings(cls, settings, seed: int = 0) -> RLController:
        return cls(
            settings.n_cells,
            settings.controller_embedding_dim,
            settings.controller_hidden_units,
            settings.controller_learning_rate,
            settings.controller_baseline_decay,
            seed,
        )

    @property
    def n_cells(self) -> int:
        return self.net.n_cells

    # -- policy ------------------------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, k: int = 1) -> list[Genome]:
        """k genomes drawn from the policy (the controller's generator advances)."""
        probs = torch.softmax(self.net.cell_logits, dim=-1)
        cells = torch.multinomial(probs, k, replacement=True, generator=self.generator).t()  # (k, n)
        p_bits = torch.sigmoid(self.net.connection_logits(cells))
        bits = torch.bernoulli(p_bits, generator=self.generator).long()
        return [Genome(tuple(c), tuple(b)) for c, b in zip(cells.tolist(), bits.tolist())]

    @torch.no_grad()
    def sample_connections(self, cells: Sequence[int]) -> Genome:
        """A genome with the given cells and connections drawn from the policy given those cells."""
        p_bits = torch.sigmoid(self.net.connection_logits(torch.tensor([list(cells)], dtype=torch.long)))
        bits = torch.bernoulli(p_bits, generator=self.generator).long().squeeze(0)
        return Genome(tuple(cells), tuple(bits.tolist()))

    def log_prob(self, genomes: Sequence[Genome], connections_only: bool = False) -> torch.Tensor:
        """log pi(genome), or log pi(connections | cells) with ``connections_only``."""
        cells = torch.tensor([g.cells for g in genomes], dtype=torch.long)
        bits = torch.tensor([g.connections for g in genomes], dtype=torch.long)
        return self.net.log_prob(cells, bits, connections_only)

    @torch.no_grad()
    def probability(self, genome: Genome) -> float:
        return float(self.log_prob([genome]).exp())

    @torch.no_grad()
    def connection_probabilities(self, cells: Sequence[int]) -> list[float]:
        """p(c_i^j = 1) for each bit, given the cells."""
        return torch.sigmoid(self.net.connection_logits(torch.tensor([list(cells)]))).squeeze(0).tolist()

    # -- learning ------------------------------------------------------------------------------------------
    def update(
        self, genomes: Sequence[Genome], rewards: Sequence[float], connections_only: Sequence[bool] | None = None
    ) -> dict:
        """One REINFORCE step (Eq. 6, gamma = 1) on sampled genomes and their rewards.

        ``connections_only[k]`` marks a genome whose cells were given (``sample_connections``): only its
        connection actions were the policy's, so only their log-probability is reinforced.
        """
        if not genomes:
            return {"loss": 0.0, "baseline": self.baseline, "mean_reward": None, "samples": 0}
        r = torch.tensor(list(rewards), dtype=torch.float32)
        mean_reward = float(r.mean())
        baseline = mean_reward if self.baseline is None else self.baseline
        advantage = r - baseline
        log_prob = self.log_prob(genomes)
        if connections_only is not None and any(connections_only):
            mask = torch.tensor([bool(x) for x in connections_only])
            log_prob = torch.where(mask, self.log_prob(genomes, connections_only=True), log_prob)
        loss = -(advantage * log_prob).mean()
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        decay = self.config["baseline_decay"]
        self.baseline = mean_reward if self.baseline is None else decay * self.baseline + (1 - decay) * mean_reward
        self.updates += 1
        return {
            "loss": float(loss.detach()),
            "baseline": self.baseline,
            "mean_reward": mean_reward,
            "samples": len(genomes),
        }

    # -- state -------------------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Weights, optimiser state, RNG state and baseline; ``torch.save``-able (``weights_only`` loads)."""
        return {
            "config": dict(self.config),
            "net": self.net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "baseline": self.baseline,
            "updates": self.updates,
        }

    def load_state_dict(self, state: dict) -> None:
        self.net.load_state_dict(state["net"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self.baseline = state["baseline"]
        self.updates = state["updates"]

    @classmethod
    def from_state_dict(cls, state: dict) -> RLController:
        controller = cls(**state["config"])
        controller.load_state_dict(state)
        return controller


# -- rewards ---------------------------------------------------------------------------------------------------


def pareto_rank_rewards(population: Sequence[Individual], offspring: Sequence[Individual]) -> list[float]:
    """1 - rank / (fronts - 1) of each offspring among population + offspring (1 = first front)."""
    fronts = nondominated_fronts(list(population) + list(offspring))
    rank = {id(ind): r for r, front in enumerate(fronts) for ind in front}
    worst = max(len(fronts) - 1, 1)
    return [1.0 - rank[id(ind)] / worst for ind in offspring]


# The scalarised reward's scale: PSNR from 33 dB (just below bicubic on Set5), the costs as the hypervolume box.
REWARD_BOX = HypervolumeBox(psnr_min=33.0)


def scalarised_rewards(offspring: Sequence[Individual], box: HypervolumeBox = REWARD_BOX) -> list[float]:
    """(1 - u_psnr) - mean of the costs' u's - violation (the paper's objectives: 0.5 u_mult_adds + 0.5 u_params),
    u's in ``box`` (:data:`REWARD_BOX`)."""
    if not offspring:
        return []
    u = box.normalise(ind.objectives for ind in offspring)
    rewards = []
    for (p, *costs), ind in zip(u, offspring):
        value = 1 - p
        for c in costs:  # in this order, so the paper's objectives give 1 - p - 0.5 m - 0.5 q bit for bit
            value -= c / len(costs)
        rewards.append(float(value) - ind.fitness.violation)
    return rewards


def action_rewards(
    kind: str,
    population: Sequence[Individual],
    evaluated: Sequence[Individual],
    actions: Sequence[dict],
    archive: dict,
    constraints=None,
) -> list[float]:
    """The reward of each controller action (a dict with the sampled ``cells``, ``connections`` and the
    ``key`` of the genome it made), through that genome.

    The genome is one of ``evaluated`` or, for a sample that duplicated a genome evaluated before, the
    one whose objectives ``archive`` (key -> objectives) holds. ``pareto_rank`` ranks the population,
    the evaluated batch and those revisited genomes together (1 on the first front, 0 on the last);
    ``scalarised`` scores each genome on its own.
    """
    pool: dict[str, Individual] = {ind.genome.key: ind for ind in population}
    pool.update((ind.genome.key, ind) for ind in evaluated)
    for action in actions:
        key = action["key"]
        if key not in pool:
            if key not in archive:
                raise KeyError(f"controller action for genome {key}: neither evaluated now nor before")
            genome = Genome(tuple(action["cells"]), tuple(action["connections"])).canonical()
            pool[key] = Individual(genome, archive[key], constraints, "archive")
    individuals = list(pool.values())
    if kind == "pareto_rank":
        rewards = pareto_rank_rewards([], individuals)
    elif kind == "scalarised":
        rewards = scalarised_rewards(individuals)
    else:
        raise ValueError(f"reward={kind!r}: use 'pareto_rank' or 'scalarised'")
    by_key = {ind.genome.key: r for ind, r in zip(individuals, rewards)}
    return [by_key[a["key"]] for a in actions]

"""The FALSR genome: micro genes (one cell choice per cell) and macro genes (connection bits).

Encoding (the one place that defines it):

* ``cells``: n cell choices, each an index into the search space's choices (:class:`SearchSpace`): the
  product op x channels x kernel x residual x repeats, enumerated in that order (repeats fastest). The
  paper's space (the default, ``conf/space/falsr.yaml``) is op {conv, gconv2, gconv4, invbottleneck_e2} x
  channels {16,32,48,64} x kernel {1,3} x residual {isskip, noskip} x repeats {1,2,4}: indices 0..191.
* ``connections``: n(n+1)/2 bits ``c_i^j`` for 0 <= i < j <= n, grouped by source node i
  (``c_0^{1..n}``, then ``c_1^{2..n}``, ...). Node 0 is the feature extractor's output and node k
  (k >= 1) the output of cell k-1; target j < n is cell j and target n is the upsampler. Bit
  ``c_i^j = 1`` concatenates node i into target j's input, in addition to node j, which always
  feeds target j (the chain edge present in all released FALSR graphs). Inputs are concatenated in
  increasing node order.

String form (Hydra-override friendly, no quoting needed): cell indices joined by ``.``, a ``-``, then
the bits grouped by source node joined by ``_``, e.g. ``12.40.7-100_01_1`` for n = 3. Cells may
also be given by name (``conv_f64_k3_b4_isskip``) when parsing.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import itertools
import json
import numbers
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from falsr.errors import UserError

# The paper's search space (SearchSpace's defaults; conf/space/falsr.yaml).
OPS = ("conv", "gconv2", "gconv4", "invbottleneck_e2")  # also every op falsr.space.network can build
CHANNELS = (16, 32, 48, 64)
KERNELS = (1, 3)
RESIDUALS = (True, False)
REPEATS = (1, 2, 4)
N_CELLS = 7  # the released FALSR-A/B/C graphs all have 7 cells
GROUPS = {"gconv2": 2, "gconv4": 4}  # channel groups of the grouped convolutions (the other ops: 1)
# The fixed parts around the cells (here, not in falsr.space.network, so the analytic cost model needs no torch).
FEATURES = 32  # feature extractor width (fixed in FALSR)
HR_FEATURES = 8  # the upsampler's channels after DepthToSpace (FALSR: 32 LR channels at x2 = 8 HR channels)
SCALES = (2, 3, 4)  # the upscaling factors a network can be built for (the sub-pixel upsampler's r)
DEFAULT_SCALE = 2  # the paper's (and the released graphs') scale


def check_scale(scale) -> int:
    """`data.scale` as an int, or a one-line error naming the supported scales."""
    if isinstance(scale, bool) or not isinstance(scale, int) or scale not in SCALES:
        raise UserError(f"data.scale={scale} is not supported: set data.scale to one of {', '.join(map(str, SCALES))}")
    return scale


# Names used in the released TensorFlow graphs, accepted when parsing cell names.
OP_ALIASES = {"groupConG2": "gconv2", "groupConG4": "gconv4", "invertBotConE2": "invbottleneck_e2"}
OP_TF_NAMES = {"conv": "conv", "gconv2": "groupConG2", "gconv4": "groupConG4", "invbottleneck_e2": "invertBotConE2"}


class GenomeError(UserError):
    """A malformed genome; the message says what is wrong and what is allowed."""


@dataclass(frozen=True)
class Cell:
    """One micro choice: the cell's operation and its hyper-parameters."""

    op: str
    channels: int
    kernel: int
    residual: bool
    repeats: int

    @property
    def groups(self) -> int:
        return GROUPS.get(self.op, 1)

    @property
    def index(self) -> int:
        """The cell's index in the active search space."""
        try:
            return active_space().index[self]
        except KeyError:
            raise GenomeError(f"cell {self.name!r} is not in the search space ({active_space().describe()})") from None

    @property
    def name(self) -> str:
        skip = "isskip" if self.residual else "noskip"
        return f"{self.op}_f{self.channels}_k{self.kernel}_b{self.repeats}_{skip}"

    @property
    def tf_name(self) -> str:
        """The cell's name in the released TensorFlow graphs."""
        skip = "isskip" if self.residual else "noskip"
        return f"{OP_TF_NAMES[self.op]}_f{self.channels}_k{self.kernel}_b{self.repeats}_{skip}"

    @property
    def has_skip(self) -> bool:
        """Whether the in-cell residual add exists: the released graphs add only with >1 repeat."""
        return self.residual and self.repeats > 1

    def canonical(self) -> Cell:
        """The same network with the residual flag normalised where it has no effect."""
        if self.repeats == 1 and not self.residual:
            return Cell(self.op, self.channels, self.kernel, True, self.repeats)
        return self

    @classmethod
    def from_name(cls, name: str) -> Cell:
        parts = name.split("_")
        try:
            skip, reps, kern, chans = parts[-1], parts[-2], parts[-3], parts[-4]
            op = "_".join(parts[:-4])
            op = OP_ALIASES.get(op, op)
            if op not in OPS or skip not in ("isskip", "noskip") or reps[0] != "b" or kern[0] != "k" or chans[0] != "f":
                raise ValueError
            cell = cls(op, int(chans[1:]), int(kern[1:]), skip == "isskip", int(reps[1:]))
        except (ValueError, IndexError):
            raise GenomeError(
                f"bad cell name {name!r}: expected <op>_f<channels>_k<kernel>_b<repeats>_<isskip|noskip> with op in "
                f"{list(OPS)}, e.g. 'conv_f64_k3_b4_isskip'"
            ) from None
        if cell not in active_space().index:
            raise GenomeError(f"cell {name!r} is not in the search space ({active_space().describe()})")
        return cell


class SpaceError(UserError):
    """A search space that cannot be built; the message names the key and what is allowed."""


@dataclass(frozen=True)
class SearchSpace:
    """What a network may be made of: each cell is one of ops x channels x kernels x residuals x repeats
    (enumerated in that order, repeats fastest: a genome's cell genes index this list) and a network has
    ``n_cells`` cells. The defaults are the paper's space, whose 0..191 order FALSR-A/B/C's genome strings use.
    Configured by the ``space`` group (``conf/space/falsr.yaml``: ``space.n_cells=5``,
    ``space.channels=[16,32,48,64,96]``) and made active for the process by :func:`set_space`."""

    ops: tuple = OPS
    channels: tuple = CHANNELS
    kernels: tuple = KERNELS
    residuals: tuple = RESIDUALS
    repeats: tuple = REPEATS
    n_cells: int = N_CELLS

    def __post_init__(self):
        for name in ("ops", "channels", "kernels", "residuals", "repeats"):
            value = getattr(self, name)
            if isinstance(value, (str, bytes, numbers.Number)) or not isinstance(value, Iterable):
                raise SpaceError(f"space.{name}={value!r}: give a list, e.g. space.{name}=[{value}]")
            value = tuple(value)
            if not value or len(set(value)) != len(value):
                raise SpaceError(f"space.{name}={list(value)}: give a non-empty list without repeated values")
            object.__setattr__(self, name, value)
        if unknown := [op for op in self.ops if op not in OPS]:
            raise SpaceError(f"space.ops: unknown op {unknown[0]!r}: falsr.space.network builds {list(OPS)}")
        for name, ok, what in (
            ("channels", lambda v: v > 0, "positive integers"),
            ("kernels", lambda v: v > 0 and v % 2 == 1, "odd positive integers"),
            ("repeats", lambda v: v > 0, "positive integers"),
        ):
            bad = [v for v in getattr(self, name) if isinstance(v, bool) or not isinstance(v, int) or not ok(v)]
            if bad:
                raise SpaceError(f"space.{name}: {bad[0]!r} is not allowed: use {what}")
        if bad := [v for v in self.residuals if not isinstance(v, bool)]:
            raise SpaceError(f"space.residuals: {bad[0]!r} is not allowed: use true and/or false")
        for op in self.ops:
            groups = GROUPS.get(op, 1)
            if bad := [c for c in self.channels if c % groups]:
                raise SpaceError(
                    f"space.channels: {bad[0]} channels cannot be split into the {groups} groups of "
                    f"{op}: use multiples of {groups} or drop {op} from space.ops"
                )
        if isinstance(self.n_cells, bool) or not isinstance(self.n_cells, int) or self.n_cells < 1:
            raise SpaceError(f"space.n_cells={self.n_cells!r}: use an integer >= 1")

    @functools.cached_property
    def choices(self) -> tuple[Cell, ...]:
        return tuple(
            Cell(*spec)
            for spec in itertools.product(self.ops, self.channels, self.kernels, self.residuals, self.repeats)
        )

    @functools.cached_property
    def index(self) -> dict[Cell, int]:
        return {c: i for i, c in enumerate(self.choices)}

    @property
    def num_choices(self) -> int:
        return len(self.choices)

    def describe(self) -> str:
        skips = ["isskip" if r else "noskip" for r in self.residuals]
        return (
            f"ops {list(self.ops)}, channels {list(self.channels)}, kernels {list(self.kernels)}, "
            f"repeats {list(self.repeats)}, {'/'.join(skips)}: {self.num_choices} choices"
        )

    def overrides(self) -> str:
        """The command-line overrides that select this space."""

        def value(v):
            return str(v).lower() if isinstance(v, bool) else str(v)

        return " ".join(
            f"space.{k}=" + (f"[{','.join(map(value, v))}]" if isinstance(v, list) else value(v))
            for k, v in self.to_dict().items()
        )

    def to_dict(self) -> dict:
        return {
            "ops": list(self.ops),
            "channels": list(self.channels),
            "kernels": list(self.kernels),
            "residuals": list(self.residuals),
            "repeats": list(self.repeats),
            "n_cells": self.n_cells,
        }


FALSR_SPACE = SearchSpace()
# The paper's space (what the released graphs and their genome strings use).
CELL_CHOICES: tuple[Cell, ...] = FALSR_SPACE.choices
CELL_INDEX: dict[Cell, int] = FALSR_SPACE.index
NUM_CHOICES = FALSR_SPACE.num_choices  # 192

# The space genomes are read in. Process-wide, like torch's default dtype: one Hydra job (or one search and
# the jobs it runs in this process) has one `space` config, set by falsr.cli.user_errors and falsr.training.train.train
# before anything is built, so every genome of the process (its index strings, the operators' draws, the
# builder, the cost model) is read in the same space.
_active_space = FALSR_SPACE


def active_space() -> SearchSpace:
    return _active_space


def set_space(space: SearchSpace | None) -> SearchSpace:
    """Make `space` (None: the paper's) the process's space; returns the previous one."""
    global _active_space
    previous, _active_space = _active_space, space or FALSR_SPACE
    return previous


@contextlib.contextmanager
def using_space(space: SearchSpace):
    previous = set_space(space)
    try:
        yield space
    finally:
        set_space(previous)


def translate_genome(text: str, space: SearchSpace) -> str:
    """A genome string written in `space`, rewritten for the active space (the same cells and connections; a
    one-line error if a cell is not in the active space)."""
    if space == active_space():
        return text
    with using_space(space):
        g = parse_genome(text)
        cells, inputs = [c.name for c in g.cell_specs], [g.inputs_of(j) for j in range(g.n_cells + 1)]
    return str(Genome.from_cells_and_inputs(cells, inputs))


def check_space_overrides(argv: Sequence[str]) -> None:
    """A ``space.<key>`` override of `argv` naming a key the search space does not have is a one-line UserError
    (Hydra's error takes five)."""
    keys = set(SearchSpace.__dataclass_fields__)
    for arg in argv:
        key = arg.lstrip("+~").partition("=")[0]
        if key.startswith("space.") and key[6:].split(".")[0] not in keys:
            raise UserError(
                f"unknown key {key}: the search space (conf/space/falsr.yaml) has {', '.join(sorted(keys))}"
            )


def space_from_config(node) -> SearchSpace:
    """The SearchSpace of a ``space`` config node (None: the paper's); a misspelt key is a one-line error."""
    if node is None:
        return FALSR_SPACE
    if hasattr(node, "_get_node"):
        from omegaconf import OmegaConf

        node = OmegaConf.to_container(node, resolve=True)
    data = {k: v for k, v in dict(node).items() if k != "_target_"}
    fields = tuple(SearchSpace.__dataclass_fields__)
    if unknown := [k for k in data if k not in fields]:
        raise SpaceError(f"unknown key space.{unknown[0]}: the space has {', '.join(fields)}")
    return SearchSpace(**data)


def num_connection_bits(n_cells: int) -> int:
    return n_cells * (n_cells + 1) // 2


def group_starts(n_cells: int) -> list[int]:
    """Bit offset of each source-node group c_i^{i+1..n} (i = 0..n-1), plus the total length."""
    starts = [0]
    for i in range(n_cells):
        starts.append(starts[-1] + n_cells - i)
    return starts


def connection_pairs(n_cells: int) -> list[tuple[int, int]]:
    """(source node i, target j) of every macro bit, in genome order."""
    return [(i, j) for i in range(n_cells) for j in range(i + 1, n_cells + 1)]


@dataclass(frozen=True)
class Genome:
    """A FALSR architecture: ``cells`` (indices into the active space's choices) and ``connections`` (0/1 bits)."""

    cells: tuple[int, ...]
    connections: tuple[int, ...]

    def __post_init__(self):
        cells, conns = tuple(self.cells), tuple(self.connections)
        if not cells:
            raise GenomeError("a genome needs at least one cell")
        for c in cells:
            if isinstance(c, bool) or not isinstance(c, numbers.Integral) or not 0 <= c < active_space().num_choices:
                raise GenomeError(
                    f"bad cell choice {c!r}: each cell is an integer 0..{active_space().num_choices - 1} "
                    f"(the search space: {active_space().describe()})"
                )
        expected = num_connection_bits(len(cells))
        if len(conns) != expected:
            raise GenomeError(f"{len(cells)} cells need {expected} connection bits (n(n+1)/2), got {len(conns)}")
        for b in conns:
            if not isinstance(b, numbers.Integral) or b not in (0, 1):
                raise GenomeError(f"bad connection bit {b!r}: connection bits are 0 or 1")
        object.__setattr__(self, "cells", tuple(int(c) for c in cells))
        object.__setattr__(self, "connections", tuple(int(b) for b in conns))

    # -- structure -----------------------------------------------------------------------------
    @property
    def n_cells(self) -> int:
        return len(self.cells)

    @property
    def cell_specs(self) -> tuple[Cell, ...]:
        choices = active_space().choices
        return tuple(choices[c] for c in self.cells)

    def inputs_of(self, target: int) -> list[int]:
        """Nodes concatenated (in this order) into target j (cell j, or the upsampler for j = n)."""
        n = self.n_cells
        if not 0 <= target <= n:
            raise GenomeError(f"target {target} out of range 0..{n}")
        bits = dict(zip(connection_pairs(n), self.connections))
        return [i for i in range(target) if bits[(i, target)]] + [target]

    # -- canonical form and identity --------------------------------------------------------------
    def canonical(self) -> Genome:
        """The genome with no-op residual flags normalised, so equal networks compare equal."""
        index = active_space().index  # a space without isskip keeps its one-repeat cells as they are
        return Genome(
            tuple(index.get(cell.canonical(), c) for c, cell in zip(self.cells, self.cell_specs)), self.connections
        )

    @property
    def key(self) -> str:
        """Stable identity of the network (of the canonical genome), for de-duplication and caching."""
        return hashlib.sha1(self.canonical().to_string().encode()).hexdigest()[:16]

    # -- (de)serialisation ------------------------------------------------------------------------
    def to_string(self) -> str:
        starts = group_starts(self.n_cells)
        groups = ("".join(map(str, self.connections[a:b])) for a, b in zip(starts, starts[1:]))
        return ".".join(map(str, self.cells)) + "-" + "_".join(groups)

    def __str__(self) -> str:
        return self.to_string()

    @classmethod
    def from_string(cls, text: str) -> Genome:
        text = str(text).strip()
        if text.count("-") != 1:
            raise GenomeError(
                f"bad genome string {text!r}: expected '<cell>.<cell>...-<connection bits>', "
                "e.g. '12.40.7-100_01_1' (cells 0..191 or names, n(n+1)/2 bits grouped by source node)"
            )
        cell_part, bit_part = text.split("-")
        cells = []
        for tok in cell_part.split("."):
            if tok.isdigit():
                cells.append(int(tok))
            else:
                cells.append(Cell.from_name(tok).index)
        bits = bit_part.replace("_", "")
        if not bits or set(bits) - {"0", "1"}:
            raise GenomeError(f"bad connection bits {bit_part!r} in genome {text!r}: only 0, 1 and '_' are allowed")
        if "_" in bit_part:  # grouped by source node: the groups must have n, n-1, ..., 1 bits
            sizes = [len(group) for group in bit_part.split("_")]
            expected = list(range(len(cells), 0, -1))
            if sizes != expected:
                raise GenomeError(
                    f"bad connection bit groups {bit_part!r} in genome {text!r}: {len(cells)} cells need groups of "
                    f"{'/'.join(map(str, expected))} bits (one per source node), got {'/'.join(map(str, sizes))}"
                )
        return cls(tuple(cells), tuple(int(b) for b in bits))

    def to_dict(self) -> dict:
        return {
            "cells": [c.name for c in self.cell_specs],
            "cell_indices": list(self.cells),
            "connections": list(self.connections),
            "string": self.to_string(),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: dict) -> Genome:
        if "cell_indices" in data:
            cells = data["cell_indices"]
        elif "cells" in data:
            cells = [c if isinstance(c, int) else Cell.from_name(c).index for c in data["cells"]]
        else:
            raise GenomeError("a genome dict needs 'cells' (names or indices) and 'connections'")
        if "connections" not in data:
            raise GenomeError("a genome dict needs 'connections' (a list of n(n+1)/2 bits)")
        return cls(tuple(cells), tuple(data["connections"]))

    @classmethod
    def from_json(cls, text: str) -> Genome:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise GenomeError(f"genome JSON is not valid JSON: {err}") from None
        return cls.from_dict(data)

    @classmethod
    def from_cells_and_inputs(cls, cells: Sequence[Cell | str | int], inputs: Sequence[Iterable[int]]) -> Genome:
        """Build from per-target input node lists (n + 1 of them, each must include its chain node)."""
        idx = [
            c if isinstance(c, int) else (c.index if isinstance(c, Cell) else Cell.from_name(c).index) for c in cells
        ]
        n = len(idx)
        if len(inputs) != n + 1:
            raise GenomeError(
                f"{n} cells need {n + 1} input lists (one per cell and one for the upsampler), got {len(inputs)}"
            )
        for j, nodes in enumerate(inputs):
            nodes = set(nodes)
            if j not in nodes or any(not 0 <= i <= j for i in nodes):
                raise GenomeError(f"target {j} may take nodes 0..{j} and must include node {j}, got {sorted(nodes)}")
        bits = tuple(int(i in set(inputs[j])) for i, j in connection_pairs(n))
        return cls(tuple(idx), bits)

    @classmethod
    def random(cls, n_cells: int | None = None, rng: random.Random | None = None) -> Genome:
        """Uniform cells and bits; n_cells defaults to the active space's."""
        rng = rng or random.Random()
        n_cells = active_space().n_cells if n_cells is None else n_cells
        return cls(
            tuple(rng.randrange(active_space().num_choices) for _ in range(n_cells)),
            tuple(rng.randint(0, 1) for _ in range(num_connection_bits(n_cells))),
        )


def node_channels(genome: Genome) -> list[int]:
    """Channels of node 0 (feature extractor) and of every cell's output."""
    return [FEATURES] + [c.channels for c in genome.cell_specs]


def model_genome(genome=None, cells=None, inputs=None) -> Genome:
    """The genome of a model config: its string form (``model.genome``) or its data form (``model.cells``, a cell
    name or index per cell, and ``model.inputs``, the input nodes of every cell and of the upsampler), not both.

    The data form is what Hydra can override item by item (``model.cells.3=conv_f32_k3_b2_isskip``) and sweep.
    """
    if hasattr(cells, "_get_node") or hasattr(inputs, "_get_node"):  # OmegaConf lists: plain ones
        from omegaconf import OmegaConf

        cells = OmegaConf.to_container(cells) if hasattr(cells, "_get_node") else cells
        inputs = OmegaConf.to_container(inputs) if hasattr(inputs, "_get_node") else inputs
    if cells is None and inputs is None:
        return parse_genome(genome)
    if genome is not None:
        raise GenomeError(
            "model.genome and model.cells/model.inputs are both set: give one form (for a genome string "
            "use model=genome model.genome=<string>)"
        )
    if cells is None or inputs is None:
        raise GenomeError(
            "model.cells and model.inputs go together: the cells, and the input nodes of every cell and "
            "of the upsampler (n + 1 lists, e.g. cells [conv_f16_k3_b1_isskip] inputs [[0], [0, 1]])"
        )
    try:
        return Genome.from_cells_and_inputs(list(cells), [list(nodes) for nodes in inputs])
    except GenomeError as err:
        raise GenomeError(f"model.cells / model.inputs: {err}") from None


def config_genome(model) -> Genome:
    """The genome of a model config node (a ``conf/model/*.yaml`` loaded, or ``cfg.model``), either form."""
    return model_genome(model.get("genome"), model.get("cells"), model.get("inputs"))


# Every model config's scale: the composing config's data.scale where it has one (train.py, evaluate.py; the
# others' data.scale defaults to null), so the network, the data and the protocol agree on it.
SCALE_LINE = (
    "scale: ${oc.select:data.scale,null}  # data.scale (2, 3 or 4); null: the weights file's scale, x2 without weights"
)


def model_config_text(genome, name: str, notes: Sequence[str] = (), weights_note: str = "") -> str:
    """A ``conf/model/<name>.yaml`` holding a genome in the data form (cells + inputs), so a user can override one
    cell or one input list from the command line; ``notes`` become its header comments."""
    g = parse_genome(genome)
    width = max(len(c.name) for c in g.cell_specs)
    lines = [f"# {n}" for n in notes] + [
        f"# Genome string: {g}",
        "# Override a cell: model.cells.3=conv_f32_k3_b2_isskip; its inputs: model.inputs.3=[0,3] (0: the feature",
        "# extractor, k: cell k-1's output; the last list feeds the upsampler; every list ends with its own chain node).",
        "_target_: falsr.weights.model.build_model",
        f"name: {name}",
        "cells:",
    ]
    lines += [f"  - {c.name:<{width}}  # cell {j}" for j, c in enumerate(g.cell_specs)]
    lines += ["inputs:"] + [
        f"  - [{', '.join(map(str, g.inputs_of(j)))}]  # " + ("upsampler" if j == g.n_cells else f"cell {j}")
        for j in range(g.n_cells + 1)
    ]
    lines += [
        "genome: null  # or the string form instead of cells + inputs (model=genome model.genome=<string>)",
        "init_std: 0.02",
        SCALE_LINE,
        "weights: null" + (f"  # {weights_note}" if weights_note else ""),
    ]
    return "\n".join(lines) + "\n"


def parse_genome(value) -> Genome:
    """Accept a Genome, its string form, a JSON string or a dict (from a Hydra/OmegaConf config)."""
    if isinstance(value, Genome):
        return value
    if isinstance(value, dict):
        return Genome.from_dict(value)
    if hasattr(value, "items"):  # an OmegaConf DictConfig
        return Genome.from_dict(dict(value.items()))
    if value is None:
        raise GenomeError(
            "no genome given: set model.genome=<string>, e.g. model.genome='12.40.7-100_01_1', "
            "or choose a zoo model with model=falsr_a|falsr_b|falsr_c"
        )
    text = str(value).strip()
    if text.startswith("{"):
        return Genome.from_json(text)
    return Genome.from_string(text)

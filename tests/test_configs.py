"""Every option of every config group, and every experiment, composed with each primary config that uses the group,
and what is cheap to build instantiated: a broken config fails here, not in the first job of a search.

After lightning-hydra-template's tests/test_configs.py; the groups and options are listed by Hydra itself (so a
new yaml file or a ConfigStore schema is covered without touching this test).
"""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from omegaconf import OmegaConf

from falsr.cli import CONF_DIR

# The primary configs and the overrides each needs to compose (search.py needs a search algorithm).
PRIMARIES = {"train": [], "search": ["+search=nsga2"], "evaluate": [], "upscale": [], "summary": []}
WITH_PATHS = {"train", "search", "evaluate"}


def _cases() -> list[tuple[str, str, str]]:
    """(primary, group, option) for every group a primary uses (its defaults list, plus experiment/search)."""
    cases = []
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        for primary, base in PRIMARIES.items():
            choices = compose(primary, overrides=base, return_hydra_config=True).hydra.runtime.choices
            groups = sorted(g for g in choices if not g.startswith("hydra/"))
            for group in groups:
                for option in loader.get_group_options(group):
                    cases.append((primary, group, option))
    return cases


CASES = _cases()


def _compose(primary: str, overrides: list[str], tmp_path):
    paths = [f"paths.output_dir={tmp_path}"] if primary in WITH_PATHS else []
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(primary, overrides=[*PRIMARIES[primary], *overrides, *paths])


def test_every_group_is_covered():
    """Each group folder of conf/ has cases here (one forgotten by every primary would be dead config)."""
    groups = {p.name for p in CONF_DIR.iterdir() if p.is_dir()}
    assert groups <= {group.split("/")[0] for _, group, _ in CASES}, groups
    assert {"train", "search", "evaluate", "upscale", "summary"} == {p for p, _, _ in CASES}


@pytest.mark.parametrize("primary, group, option", CASES, ids=[f"{p}-{g}={o}" for p, g, o in CASES])
def test_every_option_composes_and_instantiates(primary, group, option, tmp_path):
    # search=<option> replaces +search=nsga2's choice. A scheduler is swapped under budget=cpu, which leaves the
    # schedule's parameters to the scheduler's own file (budget=search sets warmup_steps: a warm-up schedule's).
    extra = ["budget=cpu"] if group == "scheduler" and primary == "search" else []
    cfg = _compose(primary, [f"{group}={option}", *extra], tmp_path)
    OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)  # every interpolation resolves
    if OmegaConf.is_missing(cfg.model, "genome"):  # model=genome: the one option that needs a value from the user
        cfg.model.genome = "conv_f16_k3_b1_isskip-1"
    net = instantiate(cfg.model, weights=None)  # the released weights need not be here
    if group == "model" and option == "bicubic":  # evaluate.py's baseline: elsewhere a one-line error on first use
        from falsr.errors import UserError

        if primary != "evaluate":
            with pytest.raises(UserError, match="model=bicubic is a baseline for evaluate.py only"):
                net.parameters()
        return
    assert sum(p.numel() for p in net.parameters()) > 0
    if primary in ("train", "search"):
        instantiate(cfg.data)
        optimizer = instantiate(cfg.optimizer)(net.parameters())
        if cfg.get("scheduler"):
            instantiate(cfg.scheduler)(optimizer)
        module = instantiate(cfg.module, net=net, optimizer=instantiate(cfg.optimizer))
        assert module.cost()["params"] > 0
        instantiate(
            cfg.trainer,
            logger=False,
            callbacks=[],
            default_root_dir=str(tmp_path),
            devices=1,
            accelerator="cpu",
            precision="32-true",
        )
        for name, logger in (cfg.get("logger") or {}).items():
            assert logger._target_.startswith("pytorch_lightning.loggers."), (
                name
            )  # built by each job (W&B: no run here)
    if primary == "search":
        from falsr.search.hydra_glue import search_config

        search_config(cfg.search)  # every part checked, the toolbox built


@pytest.mark.parametrize("experiment", sorted((CONF_DIR / "experiment").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_experiment_with_every_search_algorithm(experiment, tmp_path):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        algorithms = loader.get_group_options("search")
    for algorithm in algorithms:
        cfg = _compose("search", [f"experiment={experiment.stem}", f"search={algorithm}"], tmp_path)
        from falsr.search.hydra_glue import search_settings

        search_settings(cfg.search)
        OmegaConf.to_container(cfg, resolve=True)


@pytest.mark.parametrize(
    "experiment, scale",
    [
        ("falsr_paper", {"population_size": 64, "generations": 156, "max_mult_adds": 100e9}),
        ("showdown", {"population_size": 16, "generations": 4, "max_mult_adds": 235e9}),
        ("search_cpu", {"population_size": 8, "generations": 2, "max_mult_adds": 100e9}),
    ],
)
@pytest.mark.parametrize("algorithm", ["nsga2", "nsga3", "spea2", "random"])
def test_an_experiment_sets_the_search_scale_whatever_the_algorithm(experiment, scale, algorithm, tmp_path):
    """The scale is the experiment's, set on the typed search node (no side channel into the algorithm's file)."""
    from falsr.search.hydra_glue import search_settings

    cfg = _compose("search", [f"experiment={experiment}", f"search={algorithm}"], tmp_path)
    settings = search_settings(cfg.search)
    assert (settings.population_size, cfg.search.generations, settings.constraints.max_mult_adds) == (
        scale["population_size"],
        scale["generations"],
        scale["max_mult_adds"],
    )


def test_search_py_trains_its_candidates_on_the_search_budget_unless_an_experiment_says_otherwise():
    """search.yaml's budget=search comes through the search_cpu experiment, not an ``override budget`` of its own:
    the primary config's overrides win over an experiment's, so experiment=falsr_paper would train on budget=search
    instead of its own budget=incomplete."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        plain = compose("search", overrides=["+search=nsga2"], return_hydra_config=True)
        paper = compose("search", overrides=["+search=nsga2", "experiment=falsr_paper"], return_hydra_config=True)
    assert plain.hydra.runtime.choices.budget == "search"
    assert paper.hydra.runtime.choices.budget == "incomplete" and paper.search.settings.population_size == 64


def test_an_unknown_option_of_a_group_is_a_one_line_error(capsys):
    """trainer/ holds the Lightning Trainer's settings only: the budgets (cpu, search, ...) are budget=<name>."""
    from falsr.cli import check_group_choices

    with pytest.raises(SystemExit) as exit_:
        check_group_choices(["trainer=cpu"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err == "error: unknown trainer 'cpu': choose one of default\n"


def test_the_sweeper_plugin_is_this_checkouts():
    """Hydra finds hydra_plugins.falsr_sweeper through sys.path (a namespace package): in a second checkout (a git
    worktree, PYTHONPATH=<it>/src) the tests must run its sweeper, not the one of the editable install."""
    import sys
    from pathlib import Path

    from hydra.core.plugins import Plugins

    Plugins.instance()
    sweeper = Path(sys.modules["hydra_plugins.falsr_sweeper.falsr_sweeper"].__file__).resolve()
    assert sweeper.is_relative_to(CONF_DIR.parent), sweeper

"""The search node's schema (falsr.search.settings.SearchConfig): one place for every default, typos caught at compose."""

from __future__ import annotations

import dataclasses

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from falsr.cli import CONF_DIR, check_conf_dir
from falsr.search.driver import candidate_overrides
from falsr.search.generation import Offspring
from falsr.search.hydra_glue import search_config, search_settings, toolbox_config
from falsr.search.settings import PAPER_TOOLBOX, HypervolumeBox, SearchConfig, SearchSettings
from falsr.space.cost import genome_cost
from falsr.space.genome import parse_genome

TINY = "conv_f16_k3_b1_noskip.conv_f16_k3_b1_noskip-10_1"


def compose_search(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("search", overrides=["+search=nsga2", *overrides])


def test_the_yaml_only_overrides_the_schema_defaults():
    """+search=nsga2 is the schema's defaults: the dataclasses are the one place they live."""
    cfg = compose_search()
    assert search_settings(cfg.search) == SearchSettings()
    assert SearchSettings().population_size == 8 and SearchSettings().constraints.max_mult_adds == 100e9
    assert SearchSettings().constraints.min_psnr is None and SearchSettings().lr_size == (480, 480)
    assert toolbox_config(cfg.search) == PAPER_TOOLBOX
    assert search_config(cfg.search) == SearchConfig() and HypervolumeBox().psnr_min == 20.0
    plain = OmegaConf.to_container(cfg.search, resolve=True)
    assert plain == OmegaConf.to_container(OmegaConf.structured(SearchConfig), resolve=True)
    assert [f.name for f in dataclasses.fields(SearchConfig)] == list(plain)


@pytest.mark.parametrize("algorithm", ["nsga2", "nsga3", "spea2", "random"])
def test_every_algorithm_composes_onto_the_schema(algorithm):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("search", overrides=[f"+search={algorithm}"])
    assert OmegaConf.get_type(cfg.search) is SearchConfig
    assert isinstance(search_settings(cfg.search), SearchSettings)
    toolbox_config(cfg.search)  # builds every entry


@pytest.mark.parametrize("algorithm, factor", [("nsga2", 4), ("nsga3", 4), ("spea2", 4), ("random", 1)])
def test_prescreening_is_on_by_default_except_for_random_search(algorithm, factor):
    """The measured default (x4, README: Search efficiency) lives in the schema; random search trains what it draws."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("search", overrides=[f"+search={algorithm}"])
    assert search_settings(cfg.search).prescreen_factor == factor
    assert SearchSettings().prescreen_factor == 4


@pytest.mark.parametrize(
    "override, reason",
    [
        ("search.settings.populaton_size=3", "Key 'populaton_size' not in 'SearchSettings'"),
        ("search.settings.population_size=many", "could not be converted to Integer"),
        ("search.generation=3", "Key 'generation' not in 'SearchConfig'"),
        ("search.hypervolume_box.psnr_min=low", "could not be converted to Float"),
    ],
)
def test_a_misspelt_or_mistyped_setting_fails_at_compose_time_in_one_line(override, reason, capsys):
    with pytest.raises(ConfigCompositionException):
        compose_search(override)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        check_conf_dir([override])  # what every entry script runs before Hydra composes
    message = capsys.readouterr().err
    assert exit_.value.code == 2 and message.startswith(f"error: {override}: ") and reason in message
    assert message.count("\n") == 1
    check_conf_dir(["search.settings.population_size=16", "search.settings.lr_size=[96,128]"])  # fine


def test_each_job_computes_its_costs_at_the_searchs_lr_size(tmp_path):
    """The journal's mult-adds (what the job reports) are the selection's: both at search.settings.lr_size."""
    from hydra.utils import instantiate

    cfg = compose_search("search.settings.lr_size=[96,128]")
    settings = search_settings(cfg.search)
    assert settings.lr_size == (96, 128)
    overrides = candidate_overrides(Offspring(parse_genome(TINY), "init"), 0, lr_size=settings.lr_size)
    job = compose_search("search.settings.lr_size=[96,128]", f"paths.output_dir={tmp_path}", *overrides)
    module = instantiate(job.module, net=instantiate(job.model), optimizer=None)
    assert module.cost()["mult_adds"] == genome_cost(TINY, (96, 128)).mult_adds != genome_cost(TINY).mult_adds
    # a full training after the search: the same costs, and no +candidate.* fields (not journaled)
    full = candidate_overrides(Offspring(parse_genome(TINY), "full_train"), None, lr_size=settings.lr_size)
    assert "module.cost_lr_size=[96,128]" in full and not any(o.startswith("+candidate.") for o in full)

"""The search's evaluator: held-out validation split, common random numbers, proxy/reference configs = the bench's."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from falsr.cli import CONF_DIR
from falsr.errors import UserError
from falsr.search.driver import candidate_overrides
from falsr.search.generation import Offspring
from falsr.space.genome import parse_genome
from falsr.training.data import HOLDOUT, SRDataModule, list_images, split_holdout

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))


def search_job_config(data_dir: Path, genome: str, *extra: str):
    """The config a search candidate job gets (search.yaml + the sweeper's candidate overrides)."""
    off = Offspring(parse_genome(genome), "init")
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(
            "search", overrides=["+search=nsga2", f"paths.data_dir={data_dir}", *candidate_overrides(off, 0), *extra]
        )


def test_holdout_split_never_overlaps_training(data_dir):
    files = list_images(data_dir / "train" / "T91")
    train, held = split_holdout(files, 8)
    assert len(held) == 8 and len(train) == len(files) - 8
    assert not {p.name for p in train} & {p.name for p in held}
    assert split_holdout(files, 8) == (train, held)  # by name only: the same split in every run
    dm = SRDataModule(
        train_dir=str(data_dir / "train" / "T91"),
        val_sets=[HOLDOUT, "Set5"],
        holdout=8,
        benchmarks_dir=str(data_dir / "benchmarks"),
        patch_size=64,
    )
    dm.setup("fit")
    assert set(dm.train_set.store.names) == {p.name for p in train}
    assert [ds.name for ds in dm.val_datasets] == [HOLDOUT, "Set5"]
    assert {item["name"] for item in dm.val_datasets[0].items} == {p.stem for p in held}


def test_holdout_errors(data_dir):
    files = list_images(data_dir / "train" / "T91")
    with pytest.raises(UserError, match="leaves no training image"):
        split_holdout(files, len(files))
    with pytest.raises(UserError, match="data.holdout"):
        SRDataModule(train_dir="x", val_sets=[HOLDOUT], holdout=0)


def test_search_validates_on_held_out_training_images(data_dir):
    cfg = search_job_config(data_dir, "conv_f16_k3_b1_noskip.conv_f16_k3_b1_noskip-10_1")
    assert list(cfg.data.val_sets) == [HOLDOUT] and cfg.data.holdout > 0


def test_common_random_numbers_two_candidates_see_identical_batches(data_dir):
    """Every candidate of a search has the same seed: same patches in the same order, whatever the genome."""
    batches = []
    for genome in (
        "conv_f16_k3_b1_noskip.conv_f16_k3_b1_noskip-10_1",
        "150.169.1.167.46.107.6-1100010_100011_01110_1000_101_00_1",
    ):
        cfg = search_job_config(data_dir, genome, "data.samples_per_epoch=64")
        dm = SRDataModule(**{k: v for k, v in cfg.data.items() if k != "_target_"})
        dm.setup("fit")
        batches.append([b for b in dm.train_dataloader()])
    assert len(batches[0]) == 64 // 8  # budget=search's batch of 8
    for (lr_a, hr_a), (lr_b, hr_b) in zip(*batches):
        assert torch.equal(lr_a, lr_b) and torch.equal(hr_a, hr_b)


@pytest.mark.parametrize(
    "budget, recipe",
    [("search", "p1000_b8_p48"), ("search_p800", "p800_b8_p48"), ("search_p300", "p300"), ("reference", "p1000")],
)
def test_budget_configs_are_the_measured_recipes(budget, recipe):
    """budget=search is the proxy bench/proxy_fidelity.py chose, search_p800 its cheaper variant, search_p300 the
    one before it (pinned by the benches measured with it), budget=reference its p1000 (recipe R)."""
    from proxy_fidelity import RECIPES

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        ours = compose("train", overrides=[f"budget={budget}"])
        bench = compose("train", overrides=RECIPES[recipe])
    for key in (
        "trainer.max_steps",
        "data.samples_per_epoch",
        "data.batch_size",
        "data.patch_size",
        "optimizer.lr",
        "scheduler.warmup_steps",
        "scheduler.final_factor",
        "scheduler._target_",
        "optimizer._target_",
    ):
        node_a, node_b = ours, bench
        for part in key.split("."):
            node_a, node_b = node_a[part], node_b[part]
        assert node_a == node_b, key


def test_bf16_validation_matches_fp32_and_bad_values_are_one_line(data_dir):
    """module.val_precision=bf16 (what budget=search's auto picks on a CPU with fast bf16) scores a network as fp32
    does to a few hundredths of a dB; bench/bf16_validation.py measures the ranking on the trained panel."""
    import pytorch_lightning as pl

    from falsr.space.network import build_network
    from falsr.training.module import SRModule

    dm = SRDataModule(train_dir=data_dir / "train" / "T91", benchmarks_dir=data_dir / "benchmarks", val_sets=["Set5"])
    dm.setup("validate")
    psnr = {}
    for precision in ("fp32", "bf16"):
        torch.manual_seed(0)
        net = build_network("conv_f16_k3_b1_noskip.conv_f16_k3_b1_noskip-10_1", init_std=None)
        module = SRModule(net, optimizer=None, val_names=dm.val_names, val_precision=precision)
        pl.Trainer(
            accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False, limit_val_batches=2
        ).validate(module, datamodule=dm, verbose=False)
        psnr[precision] = module.val_results["Set5"]["psnr"]
    assert psnr["fp32"] != psnr["bf16"] and abs(psnr["fp32"] - psnr["bf16"]) < 0.05, psnr
    with pytest.raises(UserError, match="val_precision"):
        SRModule(build_network("1-1"), optimizer=None, val_precision="fp16")

"""Weight inheritance: which tensors a child takes from its parents, and the training job that does it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from falsr.cli import CONF_DIR
from falsr.errors import UserError
from falsr.space.network import build_network
from falsr.training.train import train
from falsr.weights import read_weights, save_weights
from falsr.weights.inherit import unit_signatures
from falsr.weights.model import build_model

# Four cells; no connections but the chain (each cell reads the one before), so a cell's input width is
# its predecessor's width. Cell 2 differs between PARENT and CHILD (32 -> 16 channels), which also changes
# cell 3's input width; cells 0 and 1, the head and the upsampler keep their roles.
PARENT = "conv_f32_k3_b1_noskip.conv_f32_k3_b2_isskip.conv_f32_k3_b1_noskip.conv_f32_k3_b1_noskip-0000_000_00_0"
CHILD = "conv_f32_k3_b1_noskip.conv_f32_k3_b2_isskip.conv_f16_k3_b1_noskip.conv_f32_k3_b1_noskip-0000_000_00_0"


def trained_like(genome: str, seed: int):
    """A network whose tensors differ from any fresh one (stands for trained weights)."""
    torch.manual_seed(seed)
    net = build_network(genome, init_std=None)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
    return net


def test_a_child_takes_exactly_the_units_that_keep_their_role(tmp_path):
    parent = trained_like(PARENT, 0)
    path = save_weights(parent, tmp_path / "parent.pt", lineage_steps=300)
    torch.manual_seed(1)
    child = build_model(CHILD, init_std=None, inherit_from=[path])
    report = child.inheritance
    assert set(report.units) == {"head", "cells.0", "cells.1", "upsampler.conv", "upsampler.out"}
    theirs, ours = parent.state_dict(), child.state_dict()
    for key, value in ours.items():
        same = torch.equal(value, theirs[key]) if theirs[key].shape == value.shape else False
        assert same == (not key.startswith(("cells.2.", "cells.3."))), key
    inherited = sum(v.numel() for k, v in ours.items() if not k.startswith(("cells.2.", "cells.3.")))
    assert report.inherited_params == inherited
    assert report.fraction == pytest.approx(inherited / sum(v.numel() for v in ours.values()))
    assert report.inherited_steps == 300 and report.used_sources == [str(path)]


def test_a_cell_whose_input_width_changed_is_not_inherited_even_with_the_same_choice():
    sig_parent, sig_child = unit_signatures(build_network(PARENT).genome), unit_signatures(build_network(CHILD).genome)
    assert sig_parent["cells.3"][1] == sig_child["cells.3"][1]  # same cell choice ...
    assert sig_parent["cells.3"] != sig_child["cells.3"]  # ... reading 32 instead of 16 channels


def test_the_primary_parent_wins_and_the_other_fills_in(tmp_path):
    primary = save_weights(
        trained_like(CHILD.replace("conv_f32_k3_b2_isskip", "conv_f16_k3_b2_isskip"), 2),
        tmp_path / "a.pt",
        lineage_steps=100,
    )
    other = save_weights(trained_like(PARENT, 3), tmp_path / "b.pt", lineage_steps=600)
    child = build_model(CHILD, inherit_from=[primary, other])
    units = child.inheritance.units
    assert units["head"] == 0 and units["cells.0"] == 0  # both parents have them: the primary's
    assert units["cells.1"] == 1  # the primary's cell 1 is another choice: the other parent's
    assert child.inheritance.inherited_steps == 600  # the most any contributing source had


def test_bad_sources_are_one_line_errors(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        build_model(CHILD, inherit_from=[tmp_path / "missing.pt"])
    torch.save({"state_dict": build_network(PARENT).state_dict()}, tmp_path / "bare.pt")
    with pytest.raises(UserError, match="does not name its genome"):
        build_model(CHILD, inherit_from=[tmp_path / "bare.pt"])
    with pytest.raises(UserError, match="exclusive"):
        build_model(CHILD, weights=tmp_path / "bare.pt", inherit_from=[tmp_path / "bare.pt"])


def test_a_training_job_inherits_journals_it_and_saves_its_lineage(data_dir, tmp_path):
    def job(out: Path, *extra: str) -> dict:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose(
                "train",
                overrides=[
                    f"paths.data_dir={data_dir}",
                    f"paths.output_dir={out}",
                    "logger=none",
                    "callbacks.model_checkpoint=null",
                    "trainer.enable_progress_bar=false",
                    "trainer.max_steps=4",
                    "data.batch_size=4",
                    "data.patch_size=32",
                    "data.samples_per_epoch=16",
                    "trainer.limit_val_batches=1",
                    "save_weights=true",
                    "model=genome",
                    *extra,
                ],
            )
        return train(cfg)

    parent = job(tmp_path / "parent", f"model.genome={PARENT}")
    assert parent["inherited_fraction"] == 0.0 and Path(parent["weights"]).is_file()
    assert read_weights(Path(parent["weights"]))[2]["lineage_steps"] == 4
    child = job(tmp_path / "child", f"model.genome={CHILD}", f"model.inherit_from=['{parent['weights']}']")
    assert child["status"] == "ok" and 0.0 < child["inherited_fraction"] < 1.0
    assert child["inherited_from"] == [parent["weights"]] and child["inherited_steps"] == 4
    sd, genome, meta = read_weights(Path(child["weights"]))
    assert meta["lineage_steps"] == 8 and genome == str(build_network(CHILD).genome)

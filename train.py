"""Train (or validate) an SR network: `python train.py model=falsr_b budget=cpu` (see conf/train.yaml)."""

import hydra
from omegaconf import DictConfig

from falsr.cli import check_conf_dir, user_errors
from falsr.training.train import train


@hydra.main(version_base="1.3", config_path=check_conf_dir(), config_name="train")
@user_errors
def main(cfg: DictConfig) -> dict:
    return train(cfg)


if __name__ == "__main__":
    main()

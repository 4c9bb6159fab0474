"""Multi-objective architecture search: `python search.py +search=nsga2` (see conf/search.yaml).

Each candidate is a training job (the same task as train.py) that the falsr Hydra sweeper hands to the
configured Hydra launcher.
"""

import hydra

from falsr.cli import check_conf_dir, user_errors
from falsr.search.callbacks import journaled_result
from falsr.training.train import train


@hydra.main(version_base="1.3", config_path=check_conf_dir(), config_name="search")
@user_errors
def main(cfg):
    # A job launched again by a resumed search while its first launch (on a cluster) already finished it.
    return journaled_result(cfg) or train(cfg)


if __name__ == "__main__":
    main()

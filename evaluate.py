"""Evaluate a model on benchmark folders (Table I protocol). See conf/evaluate.yaml."""

import hydra

from falsr.cli import check_conf_dir, user_errors
from falsr.protocol.evaluate import run


@hydra.main(version_base="1.3", config_path=check_conf_dir(), config_name="evaluate")
@user_errors
def main(cfg):
    return run(cfg)


if __name__ == "__main__":
    main()

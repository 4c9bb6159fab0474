"""Export a model to ONNX or TorchScript (dynamic height and width). See conf/export.yaml."""

import hydra

from falsr.cli import check_conf_dir, user_errors
from falsr.weights.export import run


@hydra.main(version_base="1.3", config_path=check_conf_dir(), config_name="export")
@user_errors
def main(cfg):
    return run(cfg)


if __name__ == "__main__":
    main()

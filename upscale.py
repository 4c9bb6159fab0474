"""Upscale an image or a folder x2. See conf/upscale.yaml."""

import hydra

from falsr.cli import check_conf_dir, user_errors
from falsr.protocol.upscale import run


@hydra.main(version_base="1.3", config_path=check_conf_dir(), config_name="upscale")
@user_errors
def main(cfg):
    return run(cfg)


if __name__ == "__main__":
    main()

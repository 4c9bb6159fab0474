"""Write Fig.-7-like comparison PNGs (crops of HR, bicubic and each model, PSNR captions). See conf/compare.yaml."""

import hydra

from falsr.cli import check_conf_dir, user_errors
from falsr.protocol.compare import run


@hydra.main(version_base="1.3", config_path=check_conf_dir(), config_name="compare")
@user_errors
def main(cfg):
    return run(cfg)


if __name__ == "__main__":
    main()

"""falsr: multi-objective NAS for fast, accurate and lightweight super-resolution.

- :mod:`falsr.space`     the search space: genome, network builder, analytic costs
- :mod:`falsr.weights`   released FALSR graphs, weight files, inheritance, export
- :mod:`falsr.protocol`  the release's evaluation protocol: colour, resize, metrics, pipeline, evaluate, upscale
- :mod:`falsr.training`  data, the LightningModule, the training task
- :mod:`falsr.search`    the multi-objective search (DEAP toolbox loop, RL controller, Hydra glue)
- :mod:`falsr.latency`   latency on the target device: measurement per backend, the per-part lookup table
- :mod:`falsr.cli`, :mod:`falsr.errors`, :mod:`falsr.fetch`, :mod:`falsr.summary`: entry-point helpers, one-line
  errors, the data fetcher (``python -m falsr.fetch``), costs of a model (``python -m falsr.summary``)
"""

import os
from pathlib import Path

from omegaconf import OmegaConf

# The checkout this package runs from (installed in editable mode, README); its data/ is the default data folder.
REPO_DIR = Path(__file__).resolve().parents[2]
# The configs live at the repository top (conf/), beside train.py and search.py: found relative to this file.
CONF_DIR = Path(os.environ.get("FALSR_CONF_DIR", REPO_DIR / "conf"))


def default_data_dir() -> Path:
    """FALSR_DATA_DIR, else data/ in the checkout: never the working directory, so runs may start anywhere."""
    env = os.environ.get("FALSR_DATA_DIR")
    return Path(env).expanduser() if env else REPO_DIR / "data"


# conf/paths/default.yaml: `data_dir: ${falsr.data_dir:}`, resolved in whichever process reads the config.
OmegaConf.register_new_resolver("falsr.data_dir", lambda: str(default_data_dir()), replace=True)
# The budgets' `data.patch_size: ${falsr.hr_patch:32,${data.scale}}`: the HR side of a 32-pixel LR patch, so a
# budget trains the same LR context (and about the same cost) at x2, x3 and x4, as EDSR's fixed LR patch does.
OmegaConf.register_new_resolver("falsr.hr_patch", lambda lr, scale: int(lr) * int(scale), replace=True)

"""falsr: multi-objective NAS for fast, accurate and lightweight super-resolution."""

import os
from pathlib import Path

from omegaconf import OmegaConf

# The checkout this package runs from (installed in editable mode, README); its data/ is the default data folder.
REPO_DIR = Path(__file__).resolve().parents[2]


def default_data_dir() -> Path:
    """FALSR_DATA_DIR, else data/ in the checkout: never the working directory, so runs may start anywhere."""
    env = os.environ.get("FALSR_DATA_DIR")
    return Path(env).expanduser() if env else REPO_DIR / "data"


# conf/paths/default.yaml: `data_dir: ${falsr.data_dir:}`, resolved in whichever process reads the config.
OmegaConf.register_new_resolver("falsr.data_dir", lambda: str(default_data_dir()), replace=True)

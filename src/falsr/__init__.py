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

import importlib
import importlib.abc
import importlib.util
import os
import sys
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


# Modules that moved into the sub-packages: their former names stay importable as the same module objects, so
# configs, scripts and pickles written before (``_target_: falsr.network.build_network``) keep working.
MOVED = {
    "genome": "space.genome", "network": "space.network", "cost": "space.cost",
    "tf_graph": "weights.tf_graph", "tf_import": "weights.tf_import", "inherit": "weights.inherit",
    "export": "weights.export",
    "color": "protocol.color", "resize": "protocol.resize", "metrics": "protocol.metrics", "images": "protocol.images",
    "benchmarks": "protocol.benchmarks", "pipeline": "protocol.pipeline", "evaluate": "protocol.evaluate",
    "upscale": "protocol.upscale", "compare": "protocol.compare",
    "data": "training.data", "module": "training.module", "train": "training.train",
    "wandb_utils": "training.wandb_utils",
}  # falsr.weights (formerly a module) is the package, which re-exports the file functions


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """``falsr.<former name>`` -> the module in its sub-package (``falsr.MOVED``)."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname.startswith("falsr.") and fullname[len("falsr."):] in MOVED:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec):
        return importlib.import_module("falsr." + MOVED[spec.name[len("falsr."):]])

    def exec_module(self, module):
        pass  # already executed under its own name


if not any(isinstance(f, _MovedModules) for f in sys.meta_path):
    sys.meta_path.append(_MovedModules())

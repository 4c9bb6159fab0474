"""The package's layers: a module imports only from its own layer and the layers below it, never from above.

Every import counts, at module level and inside functions alike (a function-local import is still a
dependency, only a hidden one). LAYERS is the order the code has: each layer uses those below it.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

# Lowest first. A name is a sub-package of falsr, one of its top modules (falsr itself: its __init__), or the
# Hydra plugin; names in one layer may import each other.
LAYERS = (
    ("falsr", "errors"),  # the data and config folders, UserError and its one-line exit
    ("space",),  # genome, network builder, analytic costs: what a network is
    ("weights",),  # weight files, the released graphs, inheritance, export: what fills a network
    ("latency",),  # measured and table-predicted latency of networks (the search reads the table)
    ("protocol",),  # the release's evaluation protocol: colour, resize, metrics, evaluate, upscale (runs ONNX exports)
    ("training",),  # data (the protocol's bicubic LR and benchmarks), the LightningModule, the training task
    ("search",),  # the search: trains candidates, reports with the protocol's metrics
    ("cli", "summary", "fetch", "falsr_sweeper"),  # entry points (and the Hydra sweeper): they call down
)
LEVEL = {name: level for level, names in enumerate(LAYERS) for name in names}


def module_name(path: Path, src: Path) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def part_of(module: str) -> str:
    """The layer name of a module: its sub-package or top module of falsr (falsr.space.genome -> space), or
    falsr_sweeper for the Hydra plugin (hydra_plugins.falsr_sweeper)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def imports(path: Path, src: Path, known: set[str]) -> list[tuple[int, str]]:
    """(line, module) of every import of falsr or its Hydra plugin in a file, function-local ones included."""
    module = module_name(path, src)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from .x import y
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            # `from falsr.weights import files` imports the module falsr.weights.files
            found += [(node.lineno, f"{base}.{a.name}" if f"{base}.{a.name}" in known else base) for a in node.names]
    # hydra_plugins is a namespace package other projects share: only our sweeper counts
    return [
        (line, name)
        for line, name in found
        if name.split(".")[0] == "falsr" or name.split(".")[:2] == ["hydra_plugins", "falsr_sweeper"]
    ]


def back_arrows(src: Path) -> list[str]:
    """Every import from a lower layer into a higher one under `src`, as `file:line: module (layer) imports ...`."""
    files = sorted(src.glob("falsr/**/*.py")) + sorted(src.glob("hydra_plugins/falsr_sweeper/**/*.py"))
    known = {module_name(p, src) for p in files}
    out = []
    for path in files:
        module = module_name(path, src)
        own = part_of(module)
        if own not in LEVEL:
            out.append(f"{path.relative_to(src)}: {module} is in no layer: add {own!r} to LAYERS in {__file__}")
            continue
        for line, name in imports(path, src, known):
            other = part_of(name)
            if other not in LEVEL:
                out.append(f"{path.relative_to(src)}:{line}: {module} imports {name}, which is in no layer")
            elif LEVEL[other] > LEVEL[own]:
                out.append(f"{path.relative_to(src)}:{line}: {module} ({own}) imports {name} ({other}), a higher layer")
    return out


def test_no_module_imports_from_a_higher_layer():
    arrows = back_arrows(SRC)
    assert not arrows, "imports against the layer order (tests/test_imports.py, LAYERS):\n" + "\n".join(arrows)


def test_every_sub_package_and_top_module_has_a_layer():
    parts = {part_of(module_name(p, SRC)) for p in SRC.glob("falsr/**/*.py")}
    assert parts == set(LEVEL) - {"falsr_sweeper"}


def test_a_hidden_back_arrow_is_found_and_named(tmp_path):
    """A function-local import from a higher layer, a relative one and a `from package import module` one."""
    for name, text in {
        "falsr/__init__.py": "",
        "falsr/space/__init__.py": "",
        "falsr/space/network.py": "import torch\n\n\ndef build():\n    from falsr.weights import files\n",
        "falsr/space/cost.py": "from ..search import driver\n",
        "falsr/weights/__init__.py": "",
        "falsr/weights/files.py": "from falsr.space import network\n",  # downwards: fine
        "falsr/search/__init__.py": "",
        "falsr/search/driver.py": "",
        "falsr/cli.py": "import falsr.search.driver\n",
    }.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert back_arrows(tmp_path) == [
        "falsr/space/cost.py:1: falsr.space.cost (space) imports falsr.search.driver (search), a higher layer",
        "falsr/space/network.py:5: falsr.space.network (space) imports falsr.weights.files (weights), a higher layer",
    ]

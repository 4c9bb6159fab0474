"""``python -m falsr.latency profile|predict [key=value ...]``: build a latency table, or check it on a network.

    python -m falsr.latency profile backend=onnxruntime precision=fp32 threads=1     # resumable; a progress bar
    python -m falsr.latency predict model=falsr_b backend=eager                      # predicted vs measured
Keys are those of :class:`falsr.latency.LatencySettings`; ``space.<key>=`` chooses the search space
(conf/space/falsr.yaml by default) and ``model=`` a conf/model name or ``genome=`` a genome string (predict).
"""

from __future__ import annotations

import json
import sys

from omegaconf import OmegaConf

from falsr.errors import exit_on_user_error
from falsr.latency import LatencyError, LatencySettings

COMMANDS = ("profile", "predict")


def fail(message: str) -> None:
    """A usage mistake found before anything runs: one line, exit code 2 (as falsr.cli's entry points)."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def _parse(argv: list[str]):
    if not argv or argv[0] not in COMMANDS:
        fail(
            f"usage: python -m falsr.latency {{{'|'.join(COMMANDS)}}} [backend=onnxruntime precision=fp32 "
            "threads=1 lr_size=[360,640] ...]"
        )
    bad = [a for a in argv[1:] if "=" not in a]
    if bad:
        fail(f"bad argument {bad[0]!r}: give key=value (e.g. backend=eager)")
    conf = OmegaConf.to_container(OmegaConf.from_dotlist(argv[1:]), resolve=True)
    return argv[0], conf


def _genome(conf: dict):
    from falsr.space.genome import config_genome, parse_genome

    if "genome" in conf:
        return parse_genome(str(conf.pop("genome"))), "genome"
    import yaml

    from falsr import CONF_DIR

    name = conf.pop("model", "falsr_b")
    path = CONF_DIR / "model" / f"{name}.yaml"
    if not path.is_file():
        names = sorted(p.stem for p in (CONF_DIR / "model").glob("*.yaml") if p.stem not in ("bicubic", "genome"))
        raise LatencyError(f"unknown model {name!r}: choose one of {', '.join(names)} (or genome=<string>)")
    return config_genome(yaml.safe_load(path.read_text())), name


def main(argv: list[str] | None = None) -> dict:
    from falsr.latency.table import LatencyTable, genome_parts, space_keys
    from falsr.space.genome import set_space, space_from_config

    command, conf = _parse(sys.argv[1:] if argv is None else argv)
    with exit_on_user_error():
        set_space(space_from_config(conf.pop("space", None)))
        if command == "predict":
            genome, name = _genome(conf)
        settings = LatencySettings.from_dict(conf)
        table = LatencyTable(settings)
        if command == "profile":
            keys = space_keys()
            before = len(table.missing(keys))
            print(f"latency table {table.path}: {len(keys) - before} of {len(keys)} parts measured", file=sys.stderr)
            table.profile(keys)
            result = {"table": str(table.path), "parts": len(keys), "measured_now": before}
        else:
            from falsr.latency.measure import measure_network, warn_if_noisy

            table.profile(genome_parts(genome), progress=False)
            predicted = table.predict(genome)
            measured = measure_network(genome, settings)
            warn_if_noisy([measured], settings, name)
            result = {
                "model": name,
                "genome": str(genome),
                "settings": settings.describe(),
                "predicted_ms": predicted,
                "measured_ms": measured.ms,
                "spread": measured.spread,
            }
            print(
                f"{name}: predicted {predicted:.2f} ms, measured {measured.ms:.2f} ms "
                f"(spread {measured.spread:.0%}) [{settings.describe()}]"
            )
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()

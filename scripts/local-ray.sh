#!/usr/bin/env bash
# A local Ray head node, for the Ray cluster tests (tests/test_cluster_ray.py):
#   scripts/local-ray.sh start|stop|status|env
# start: `ray start --head` with this machine's CPUs (FALSR_RAY_CPUS to choose), its session files under
# $FALSR_RAY_DIR (default /tmp/falsr-ray), on port $FALSR_RAY_PORT (6380, beside a default Ray's 6379).
# Ray is taken from the Python in $PYTHON (default: .venv/bin/python if there, else python3): install it with
# `pip install -e ".[ray]"`. Ray's workers run that Python with the environment of this script (PYTHONPATH
# included), not the search's. Use it with  eval "$(scripts/local-ray.sh env)"  (RAY_ADDRESS).
# stop: `ray stop` for the head started here (its pid file), nothing else.
set -euo pipefail
cd "$(dirname "$0")/.."

DIR="${FALSR_RAY_DIR:-/tmp/falsr-ray}"
PORT="${FALSR_RAY_PORT:-6380}"
CPUS="${FALSR_RAY_CPUS:-$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)}"  # (nproc alone counts OMP_NUM_THREADS)
if [ -z "${PYTHON:-}" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi

die() { echo "local-ray: $*" >&2; exit 1; }

ray_cli() { "$PYTHON" -c 'import sys; from ray.scripts.scripts import main; sys.argv[0] = "ray"; main()' "$@"; }

up() { [ -f "$DIR/address" ] && ray_cli status --address "$(cat "$DIR/address")" >/dev/null 2>&1; }

start() {
  "$PYTHON" -c 'import ray, hydra_plugins.hydra_ray_launcher' 2>/dev/null ||
    die "no ray / hydra-ray-launcher in $PYTHON: pip install -e \".[ray]\" (or set PYTHON)"
  mkdir -p "$DIR" || die "cannot create $DIR: set FALSR_RAY_DIR"
  if up; then echo "local-ray: already up at $(cat "$DIR/address")"; return; fi
  RAY_USAGE_STATS_ENABLED=0 ray_cli start --head --port="$PORT" --num-cpus="$CPUS" --temp-dir="$DIR/session" \
    --include-dashboard=false --disable-usage-stats >"$DIR/start.log" 2>&1 ||
    die "ray start failed (see $DIR/start.log)"
  echo "127.0.0.1:$PORT" >"$DIR/address"
  for _ in $(seq 30); do up && { echo "local-ray: head up at $(cat "$DIR/address") with $CPUS CPUs"; return; }; sleep 1; done
  die "the Ray head does not answer after 30 s (see $DIR/start.log)"
}

# This head's processes: those naming its session folder, its client server (naming its port), and their
# children (Ray's agents, workers). `ray stop` would stop every Ray of this user on the machine.
head_pids() {
  local pids child
  pids="$(pgrep -f -- "$DIR/session|ray.util.client.server --address=[0-9.]*:$PORT " || true)"
  for child in $pids; do pgrep -P "$child" || true; done
  echo "$pids"
}

stop() {
  [ -f "$DIR/address" ] || { echo "local-ray: not started here"; return; }
  local pids
  pids="$(head_pids)"
  [ -z "$pids" ] || kill $pids 2>/dev/null || true
  for _ in $(seq 20); do [ -z "$(head_pids)" ] && break; sleep 0.5; done
  pids="$(head_pids)"
  [ -z "$pids" ] || kill -9 $pids 2>/dev/null || true
  rm -f "$DIR/address"
  echo "local-ray: stopped"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) if up; then echo "local-ray: up at $(cat "$DIR/address")"; else echo "local-ray: down"; exit 1; fi ;;
  env) echo "export RAY_ADDRESS=127.0.0.1:$PORT" ;;
  *) die "usage: $0 start|stop|status|env" ;;
esac

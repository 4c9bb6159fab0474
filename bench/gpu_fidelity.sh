#!/usr/bin/env bash
# The GPU part of the evaluator's measurements, as one script for a lent CUDA machine (15 minutes):
#   1. the CUDA path: a tiny search (+search=nsga2) whose candidate jobs train and validate on the GPU, and the
#      training/evaluator tests on the GPU;
#   2. bench/proxy_fidelity.py's reference recipe (3000 steps x batch 32, bf16), seeds 0,1,2,3 in that order,
#      16 genomes at a time (one process per CPU core); finished runs go one line each to OUT/runs.jsonl, so a
#      run cut off by the time limit loses only the runs in flight. Merge that file into bench/results/runs.jsonl.
#
#   bash bench/gpu_fidelity.sh OUT [SECONDS_FOR_THE_REFERENCE]
#
# Needs hydra-core, omegaconf, antlr4 and deap importable (PYTHONPATH) besides torch/lightning/torchmetrics.
set -u
out=${1:?usage: bash bench/gpu_fidelity.sh OUT [SECONDS]}
budget=${2:-450}
mkdir -p "$out"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 WANDB_MODE=disabled
workers=$(nproc)
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, pytorch_lightning as pl; print('torch', torch.__version__, 'lightning', pl.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0))" || exit 1

# 1. the CUDA path, beside the reference (they are small next to it)
(timeout 200 python3 search.py +search=nsga2 budget=search trainer.max_steps=60 data.samples_per_epoch=960 \
    search.settings.population_size=4 search.generations=2 hydra.sweep.dir=/tmp/gpu-search \
    > "$out/search.log" 2>&1; echo "search exit $?" >> "$out/search.log"
 cp /tmp/gpu-search/journal.jsonl "$out/search_journal.jsonl" 2>/dev/null) &
(timeout 300 python3 -m pytest -q -p no:cacheprovider tests/test_train.py tests/test_inherit.py \
    tests/test_evaluator.py > "$out/pytest.log" 2>&1; echo "pytest exit $?" >> "$out/pytest.log") &

# 2. the reference
timeout "$budget" python3 bench/proxy_fidelity.py --recipes reference --seeds 0,1,2,3 --workers "$workers" \
    --threads 1 --store "$out/runs.jsonl" --train-only > "$out/fidelity.log" 2>&1
echo "fidelity exit $? after $SECONDS s; $(wc -l < "$out/runs.jsonl" 2>/dev/null || echo 0) runs stored"
wait
tail -n 4 "$out/search.log" "$out/pytest.log"

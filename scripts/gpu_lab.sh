#!/usr/bin/env bash
# The hypothesis lab's full run on one GPU: `mambaout lab EXPERIMENT` with the full presets (5 seeds per
# cell, a 3-value lr grid per model on held-out data, fixed step budgets; issue #17). Writes the run folder
# to $OUT/lab (and a log beside it). `lab all` is about 30-40 min on one GPU (estimate from the H100 step
# times of the earlier run), so it is meant to be split into calls of <= 9 min, one per experiment/part:
#
#   EXPERIMENT=causal  OUT=/tmp/o1 bash scripts/gpu_lab.sh                                 # ~8 min
#   EXPERIMENT=framing OUT=/tmp/o2 bash scripts/gpu_lab.sh --set framing:parts=[images]    # ~7.5 min
#   EXPERIMENT=framing OUT=/tmp/o3 bash scripts/gpu_lab.sh --set framing:parts=[pixels]    # ~7.5 min
#   EXPERIMENT=framing OUT=/tmp/o4 bash scripts/gpu_lab.sh --set framing:parts=[next_pixel] # ~7 min
#   EXPERIMENT=framing OUT=/tmp/o5 bash scripts/gpu_lab.sh --set framing:parts=[copy]      # ~7 min (optional)
#   EXPERIMENT=all     OUT=/tmp/o  bash scripts/gpu_lab.sh                                 # everything, ~35 min
#
# On a host with several GPUs the calls can run side by side in one command (DEVICE=cuda:0, cuda:1, ...).
# Each call's report applies Holm's correction over its own comparisons.
# Fashion-MNIST: the 4 IDX .gz files in $DATA (default .data/fashion-mnist, a git-ignored folder),
# else $MAMBAOUT_FASHION_MNIST, else /usr/share/datasets/fashion-mnist. Extra CLI arguments are passed on
# (e.g. `--seeds 5`, `--set framing:images.steps=400`).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-runs/gpu_lab}"
DATA="${DATA:-.data/fashion-mnist}"
mkdir -p "$OUT"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
DATA_ARGS=()
if [ -d "$DATA" ]; then DATA_ARGS=(--data-root "$DATA"); fi
{
  echo "date: $(date -u +%FT%TZ)"
  echo "host: $(hostname)"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
  python -c "import torch, timm; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'timm', timm.__version__)"
  python -c "import triton; print('triton', triton.__version__)" 2>/dev/null || echo "triton: not importable"
} | tee "$OUT/environment.txt"
start=$(date +%s)
set +e
python -m mambaout lab "${EXPERIMENT:-all}" --device "${DEVICE:-cuda}" --out "$OUT/lab" "${DATA_ARGS[@]}" "$@" 2>&1 | tee "$OUT/lab.log"
rc=${PIPESTATUS[0]}
set -e
echo "wall_s: $(( $(date +%s) - start ))  rc: $rc" | tee -a "$OUT/environment.txt"
exit "$rc"

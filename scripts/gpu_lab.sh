#!/usr/bin/env bash
# The hypothesis lab's full run on one GPU: `mambaout lab all` with the full presets (3 seeds per cell),
# about 8.5 minutes on one H100 (496 s measured). Writes the run folder to $OUT/lab (and a log beside it).
#
#   OUT=/tmp/out bash scripts/gpu_lab.sh                  # from the repository root
#   DATA=/path/to/fashion-mnist OUT=... bash scripts/gpu_lab.sh
#
# Fashion-MNIST: the 4 IDX .gz files in $DATA (default .data/fashion-mnist, a git-ignored folder),
# else $MAMBAOUT_FASHION_MNIST, else /usr/share/datasets/fashion-mnist. Extra CLI arguments are passed on
# (e.g. `--seeds 5`, `--set framing:budget_s.copy=120`).
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
python -m mambaout lab all --device "${DEVICE:-cuda}" --out "$OUT/lab" "${DATA_ARGS[@]}" "$@" 2>&1 | tee "$OUT/lab.log"
rc=${PIPESTATUS[0]}
set -e
echo "wall_s: $(( $(date +%s) - start ))  rc: $rc" | tee -a "$OUT/environment.txt"
exit "$rc"

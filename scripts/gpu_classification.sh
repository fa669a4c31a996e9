#!/usr/bin/env bash
# GPU checks for classification (issue #4). Run from the repo root:
#   OUT=/tmp/out bash scripts/gpu_classification.sh [FASHION_MNIST_DIR]
# (a) MambaOut-Femto vs mamba_femto on Fashion-MNIST (preset fashion_mnist, full data), wall times;
# (b) training throughput of mambaout_tiny, 224^2, bf16, batch 128: this training loop vs a plain timm step.
# Environment: MODELS (default "mambaout_femto mamba_femto"), CUDA_GRAPH=1 (train.cuda_graph for (a)),
# PARTS (default "b a"), EPOCHS, BUDGET_S.
# Results: $OUT/gpu_classification.log, $OUT/throughput.json, $OUT/compare.json, $OUT/compare_curves.png
set -uo pipefail
OUT=${OUT:-gpu_out}
mkdir -p "$OUT"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
FM=${1:-${MAMBAOUT_FASHION_MNIST:-.data/fashion-mnist}}
EPOCHS=${EPOCHS:-}
MODELS=${MODELS:-mambaout_femto mamba_femto}
PARTS=${PARTS:-b a}
GRAPH=()
if [ "${CUDA_GRAPH:-0}" = 1 ]; then GRAPH=(--set train.cuda_graph=true); fi
BUDGET_S=${BUDGET_S:-0}   # >0: stop the comparison (SIGINT) so the whole script ends within this many seconds
{
  date -u +"%Y-%m-%dT%H:%M:%SZ"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python -c "import torch, timm; print('torch', torch.__version__, 'timm', timm.__version__)"
  if [[ " $PARTS " == *" b "* ]]; then
    echo "== (b) throughput: mambaout_tiny, 224x224, bf16, batch 128"
    python benchmarks/bench_train_loop.py --model mambaout_tiny --batch-size 128 --img-size 224 --cuda-graph \
      --out "$OUT/throughput.json"
  fi
  [[ " $PARTS " == *" a "* ]] || exit 0
  echo "== (a) Fashion-MNIST: $MODELS (data: $FM) ${GRAPH[*]}"
  start=$(date +%s)
  limit=()
  if [ "$BUDGET_S" -gt 0 ]; then limit=(timeout -s INT $(( BUDGET_S - SECONDS - 15 ))); fi
  # shellcheck disable=SC2086  # MODELS is a word list
  "${limit[@]}" python -m mambaout compare --models $MODELS --data-root "$FM" --output /tmp/fm_compare --quiet \
    ${EPOCHS:+--epochs $EPOCHS} "${GRAPH[@]}"
  echo "compare rc=$?"
  echo "compare wall time: $(( $(date +%s) - start )) s"
  cp /tmp/fm_compare/compare.json /tmp/fm_compare/compare_curves.png "$OUT/" 2>/dev/null
  for m in $MODELS; do cp "/tmp/fm_compare/$m/metrics.jsonl" "$OUT/fm_${m}_metrics.jsonl" 2>/dev/null; done
} 2>&1 | tee "$OUT/gpu_classification.log"

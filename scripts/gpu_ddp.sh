#!/usr/bin/env bash
# 2-GPU DDP smoke run (torchrun, NCCL): Fashion-MNIST, MambaOut-Femto, 3 epochs, then `mambaout eval` of the
# checkpoint on one GPU. Run from the repo root:  OUT=/tmp/out bash scripts/gpu_ddp.sh [FASHION_MNIST_DIR]
set -uo pipefail
OUT=${OUT:-gpu_out}
mkdir -p "$OUT"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
FM=${1:-${MAMBAOUT_FASHION_MNIST:-.data/fashion-mnist}}
NPROC=${NPROC:-2}
{
  date -u +"%Y-%m-%dT%H:%M:%SZ"
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
  start=$(date +%s)
  torchrun --standalone --nproc-per-node "$NPROC" -m mambaout train --preset fashion_mnist --data-root "$FM" \
    --epochs 3 --batch-size 128 --output /tmp/ddp_runs --name ddp --quiet
  echo "ddp train rc=$? wall $(( $(date +%s) - start )) s"
  python -m mambaout eval --checkpoint /tmp/ddp_runs/ddp/last.pt --quiet --json | tail -1 > "$OUT/ddp_eval.json"
  cat "$OUT/ddp_eval.json"
  cp /tmp/ddp_runs/ddp/metrics.jsonl "$OUT/ddp_metrics.jsonl"
} 2>&1 | tee "$OUT/gpu_ddp.log"

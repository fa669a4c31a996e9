#!/usr/bin/env bash
# GPU checks of the selective scan (issue #3), from the repo root on a CUDA machine:
#   OUT=/tmp/out bash scripts/gpu_scan.sh
# PARTS (default "tests defaults"):
#   tests     all GPU scan tests (tests/gpu/test_scan*.py) -> $OUT/gpu_tests_scan.log
#   defaults  the default tiles at the issue's shapes, fp32 and bf16, timed both ways: host launches (what a
#             training step sees) and CUDA-graph replays (GPU time alone) -> $OUT/defaults{,_graph}.{log,json}
#   sweep1    the tile sweep at d_state 1 and 2, every candidate at full repetition, graph-timed
#   sweep16   the tile sweep at d_state 16 (VMamba stage 1 and Vim), graph-timed
#   ref       the sequential reference at the issue's shapes (slow: ~1 min)
#   sass      the default kernels' SASS of SASS_OLD (a saved scan_triton.py or scan_triton/ package) against this
#             tree's, compiled offline with the installed Triton (benchmarks/sass_compare.py) -> $OUT/sass_compare.log
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/gpu_scan_out}
PARTS=${PARTS:-tests defaults}
mkdir -p "$OUT"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
has() { [[ " $PARTS " == *" $1 "* ]]; }
bench() { local name=$1; shift; python benchmarks/bench_scan.py "$@" --json "$OUT/$name.json" > "$OUT/$name.log" 2>&1
  echo "== $name (rc $?)"; grep -A8 "^Card:" "$OUT/$name.log"; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
if has tests; then
  python -m pytest -q tests/gpu/test_scan*.py > "$OUT/gpu_tests_scan.log" 2>&1
  echo "== tests (rc $?)"; tail -3 "$OUT/gpu_tests_scan.log"
fi
if has defaults; then
  bench defaults --shapes vmamba16,vmamba1,vim --dtypes fp32,bf16 --no-ref
  bench defaults_graph --shapes vmamba16,vmamba1,vim --dtypes fp32,bf16 --no-ref --graph
fi
if has sweep1; then bench sweep1_graph --sweep --full --graph --shapes vmamba1,vmamba2 --dtypes fp32,bf16 --no-ref --no-torch; fi
if has sweep16; then bench sweep16_graph --sweep --graph --shapes vmamba16,vim --dtypes fp32,bf16 --no-ref --no-torch; fi
if has ref; then bench reference --shapes vmamba16,vmamba1,vim --dtypes fp32 --ref-iters 2; fi
if has sass; then
  if [[ -z "${SASS_OLD:-}" ]]; then echo "== sass: set SASS_OLD to the version to compare against"; else
    python benchmarks/sass_compare.py "$SASS_OLD" src/mambaout/ops/scan_triton > "$OUT/sass_compare.log" 2>&1
    echo "== sass (rc $?)"; tail -2 "$OUT/sass_compare.log"
  fi
fi

#!/usr/bin/env bash
# `mambaout benchmark` of the zoo on one GPU (issue #24): at most 480 s of timeouts, ~8 min of one H200
# (an estimate: not yet run on a GPU). A part cut by its timeout keeps its finished rows in NAME.log.
# Writes $OUT/bench/*.{md,json,png} and a log per part.
#
#   OUT=/tmp/out bash scripts/gpu_benchmark.sh            # from the repository root
#
# Parts (each under `timeout`, so one slow part cannot eat the others' time):
#   infer_eager   every 224² ImageNet model of the zoo + the MambaOut+SSM pairs, bf16, batch 256, batch-1
#                 latency, --against-timm (ConvNeXt-T, Swin-T, timm's MambaOut), throughput-vs-top-1 plot
#   infer_graphs  the same settings under CUDA graphs, a smaller set (host launch overhead removed)
#   infer_compile torch.compile (default): MambaOut-T, its SSM pair, VMamba-T (compile time is reported)
#   train_eager   a full training step (bf16, batch 128, AdamW), --against-timm
#   train_graphs  the same step captured in a CUDA graph
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-runs/gpu_benchmark}"
B="$OUT/bench"
mkdir -p "$B"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
ZOO="mambaout_femto mambaout_kobe mambaout_tiny mambaout_small mambaout_base mamba_femto mamba_tiny mamba_small
 mamba_base vmamba_tiny vmamba_tiny_s2l5 vmamba_small vmamba_base vim_tiny vim_small vim_base localvim_tiny
 localvmamba_tiny plainmamba_l1 plainmamba_l2 efficientvmamba_tiny efficientvmamba_small efficientvmamba_base vit_small"
SMALL="mambaout_femto mambaout_tiny mamba_femto mamba_tiny vmamba_tiny vim_small"
COMMON=(--device cuda --amp bf16 --repeats 20 --warmup 5)
{
  echo "date: $(date -u +%FT%TZ)"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
  python -c "import torch, timm; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'timm', timm.__version__)"
} | tee "$B/environment.txt"
part() {  # part NAME SECONDS ARGS...: JSON to NAME.json, its Markdown to NAME.md, each row also in NAME.log
  local name=$1 secs=$2; shift 2
  local t0=$(date +%s)
  timeout "$secs" python -m mambaout benchmark "$@" --json > "$B/$name.json" 2> "$B/$name.log"
  echo "$name: rc $? in $(( $(date +%s) - t0 )) s" | tee -a "$B/environment.txt"
  python - "$B/$name.json" > "$B/$name.md" <<'PY' 2>/dev/null || true
import json, sys
from mambaout.bench.table import BenchTable
d = json.load(open(sys.argv[1]))
print(BenchTable(d["rows"], d["settings"], d["notes"]).to_markdown())
PY
}
part infer_eager 230 $ZOO "${COMMON[@]}" --batch-size 256 --against-timm --plot "$B/throughput_vs_top1.png"
part infer_graphs 60 $SMALL "${COMMON[@]}" --batch-size 256 --cuda-graphs
part infer_compile 90 mambaout_tiny mamba_tiny vmamba_tiny "${COMMON[@]}" --batch-size 256 --compile default
part train_eager 60 $SMALL "${COMMON[@]}" --batch-size 128 --mode train --against-timm
part train_graphs 40 $SMALL "${COMMON[@]}" --batch-size 128 --mode train --cuda-graphs

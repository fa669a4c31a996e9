#!/usr/bin/env bash
# Fashion-MNIST at the state of the art (issue #26). Runs several trainings at once on one GPU (each with its
# images on the device, data.device_augment), so every run's wall time is an upper bound on its solo time.
#
#   PHASE=ablate OUT=/tmp/out bash scripts/gpu_fashion_mnist_sota.sh [FASHION_MNIST_DIR]
#       one row per recipe change, validated on 5000 held-out training images (data.holdout; the test set
#       is not read), EPOCHS epochs each (default 20); ROWS picks rows (default: all)
#   PHASE=solo ROWS="b256 pil256 b1k" EPOCHS=2 ...: the same rows one after another (throughput alone on the GPU)
#   PHASE=final OUT=/tmp/out bash scripts/gpu_fashion_mnist_sota.sh [FASHION_MNIST_DIR]
#       preset fashion_mnist_sota for MODELS x SEEDS on the full 60k training images; the test set is read
#       once, after the last epoch
# Every run is stopped (SIGINT: checkpoint, summary) after BUDGET_S seconds. Results: $OUT/<phase>.md (table),
# $OUT/<phase>.json, $OUT/<phase>_runs.tar.gz (configs, metrics, logs).
set -uo pipefail
cd "$(dirname "$0")/.."
PHASE=${PHASE:-ablate}
OUT=${OUT:-runs/gpu_fm_sota}
WORK=${WORK:-/tmp/fm_sota_$PHASE}
FM=${1:-${MAMBAOUT_FASHION_MNIST:-.data/fashion-mnist}}
BUDGET_S=${BUDGET_S:-480}
DEVICE=${DEVICE:-cuda}
EPOCHS=${EPOCHS:-20}
mkdir -p "$OUT" "$WORK"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 OMP_NUM_THREADS=2
PY=${PYTHON:-python3}

launch() {  # name preset args...
  local name=$1 preset=$2
  shift 2
  timeout -s INT "$BUDGET_S" $PY -m mambaout train --preset "$preset" --device "$DEVICE" --data-root "$FM" \
    --quiet --output "$WORK" --name "$name" "$@" >"$WORK/$name.log" 2>&1 &
  if [ "$PHASE" = solo ]; then wait; fi
}

date -u +"%Y-%m-%dT%H:%M:%SZ" | tee "$OUT/$PHASE.log"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null | tee -a "$OUT/$PHASE.log"
start=$(date +%s)
if [ "$PHASE" = ablate ] || [ "$PHASE" = solo ]; then
  # the recipe every row shares: images on the device, 5000 held out, EMA, mirror test, CUDA graphs
  common=(--set data.device_augment=true --set data.holdout=5000 --set train.eval_flip=true --set train.ema=true
    --set train.ema_decay=0.999 --set sched.epochs="$EPOCHS" --set train.eval_every=5 --set train.cuda_graph=auto)
  B1K="--set train.ema=false --set train.batch_size=1024 --set optim.lr=4e-3 --set sched.warmup_epochs=2"
  declare -A ROW=(
    [pil]="--set data.device_augment=false --set data.num_workers=3"
    [base]=""
    [re50]="--set aug.reprob=0.5"
    [mix]="--set aug.mixup=0.8 --set aug.cutmix=1.0"
    [kobe]="--set model.name=mambaout_kobe"
    [tiny]="--set model.name=mambaout_tiny --set model.drop_path=0.1"
    [s1]="--set model.stem_stride=1"
    [e2x]="--set sched.epochs=$((EPOCHS * 2))"
    [mamba]="--set model.name=mamba_femto"
    # second round: 4x the batch (the first round's steps were kernel-latency bound), EMA off (it trailed)
    [b256]="--set train.ema=false"
    [b1k]="$B1K"
    [b1k_re50]="$B1K --set aug.reprob=0.5"
    [b1k_mamba]="$B1K --set model.name=mamba_femto"
    # third round: longer (EPOCHS=100), stronger erasing, a wider model
    [b1k_kobe_re50]="$B1K --set aug.reprob=0.5 --set model.name=mambaout_kobe"
    [pil256]="--set train.ema=false --set data.device_augment=false --set data.num_workers=8"
  )
  ROWS=${ROWS:-pil base re50 mix kobe tiny s1 e2x mamba}  # round 2: ROWS="b256 b1k b1k_re50 b1k_mamba" EPOCHS=40
  for r in $ROWS; do
    # shellcheck disable=SC2086  # a row is a word list
    launch "$r" fashion_mnist "${common[@]}" ${ROW[$r]} ${EXTRA:-}
  done
else
  MODELS=${MODELS:-mambaout_femto mamba_femto}
  SEEDS=${SEEDS:-0 1 2}
  for m in $MODELS; do
    for s in $SEEDS; do
      # shellcheck disable=SC2086
      launch "${m}_s$s" "${PRESET:-fashion_mnist_sota}" --model "$m" --seed "$s" ${EXTRA:-}
    done
  done
fi
wait
echo "all runs ended after $(($(date +%s) - start)) s" | tee -a "$OUT/$PHASE.log"
$PY - "$WORK" "$OUT" "$PHASE" <<'EOF' | tee -a "$OUT/$PHASE.log"
import glob, json, os, sys
work, out, phase = sys.argv[1:]
rows = []
for d in sorted(glob.glob(os.path.join(work, "*", "metrics.jsonl"))):
    name = os.path.basename(os.path.dirname(d))
    recs = [json.loads(line) for line in open(d) if line.strip()]
    evals = [r for r in recs if "val_top1" in r]
    last = evals[-1] if evals else {}
    summary = os.path.join(os.path.dirname(d), "summary.json")
    s = json.load(open(summary)) if os.path.exists(summary) else {}
    rows.append({
        "run": name, "epoch": last.get("epoch"), "val_top1": last.get("val_top1"),
        "val_top1_single": last.get("val_top1_single"), "ema_top1": last.get("ema_top1"),
        "ema_top1_single": last.get("ema_top1_single"), "img_per_s": next((r["train_img_per_s"] for r in reversed(recs) if "train_img_per_s" in r), None),
        "wall_s": s.get("wall_time_s") or s.get("time_s"), "params_m": s.get("params_m"),
    })
json.dump(rows, open(os.path.join(out, f"{phase}.json"), "w"), indent=1)
keys = list(rows[0]) if rows else []
lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
for r in rows:
    lines.append("| " + " | ".join("" if r[k] is None else f"{r[k]:.2f}" if isinstance(r[k], float) else str(r[k]) for k in keys) + " |")
open(os.path.join(out, f"{phase}.md"), "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
EOF
tar czf "$OUT/${PHASE}_runs.tar.gz" -C "$WORK" --exclude='*.pt' --exclude='*.safetensors' . 2>/dev/null
ls -la "$OUT"

#!/usr/bin/env bash
# Does multi-scale + flip segmentation testing hold up on a GPU under AMP? (The H100 run of gpu_dense.sh gave
# mIoU 0.765 single scale but 0.407 with --multi-scale on the same FP16 checkpoint; CPU runs never dropped.)
#   1. writes an ADE20K-layout shapes set (mambaout.data.shapes.write_ade_shapes, as gpu_dense.sh);
#   2. trains UperNet on MambaOut-Femto briefly with gpu_dense.sh's segmentation settings (512-ch UPerHead,
#      FP16 as that run; ~500 iterations, about a minute on an H100);
#   3. evaluates that checkpoint single scale and multi-scale + flip under AMP none, bf16 and fp16
#      (scripts/seg_msflip_eval.py: the eval-seg code path, plus a breakdown per flip / ratio, the pre-fix
#      "legacy" aug test, and a count of forwards with non-finite logits), and once through the CLI
#      (`mambaout eval-seg --multi-scale`) as a cross-check.
# One table line per setting on stdout; results_msflip.json, msflip_eval.json, logs under $OUT.
# Exit status 0 when ms+flip >= single - TOL under every AMP.
#
#   OUT=/tmp/out bash scripts/gpu_dense_msflip.sh                  # on a CUDA machine, from the repo root
#   DEVICE=cpu N_TRAIN=16 N_VAL=4 IMG=64 SEG_ITERS=4 BATCH=2 CHANNELS=16 AUX_CHANNELS=8 WORKERS=0 \
#     BACKBONE=mambaout_test bash scripts/gpu_dense_msflip.sh      # tiny CPU check of the script itself
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/gpu_dense_msflip_out}
WORK=${WORK:-/tmp/gpu_dense_msflip}
DEVICE=${DEVICE:-cuda}
BACKBONE=${BACKBONE:-mambaout_femto}
N_TRAIN=${N_TRAIN:-800}
N_VAL=${N_VAL:-100}
IMG=${IMG:-128}
SEG_ITERS=${SEG_ITERS:-500}
BATCH=${BATCH:-16}
CHANNELS=${CHANNELS:-512}
AUX_CHANNELS=${AUX_CHANNELS:-256}
WORKERS=${WORKERS:-6}
TRAIN_AMP=${TRAIN_AMP:-fp16}  # gpu_dense.sh trains with train.amp=fp16
AMPS=${AMPS:-none,bf16,fp16}
SCALES=${SCALES:-0.75,1.0,1.25}
TOL=${TOL:-0.005}
BREAKDOWN=${BREAKDOWN:-1}
PY=${PYTHON:-python3}
mkdir -p "$OUT" "$WORK"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1

fail() {
  echo "FAILED: $*" >&2
  printf '{"passed": false, "error": "%s"}\n' "$*" > "$OUT/results_msflip.json"
  exit 2
}

echo "== writing data to $WORK/ade ($N_TRAIN train / $N_VAL val, ${IMG}x${IMG})"
rm -rf "$WORK/ade" "$WORK/runs/seg"
$PY -c "
from mambaout.data.shapes import write_ade_shapes
write_ade_shapes('$WORK/ade', $N_TRAIN, $N_VAL, ($IMG, $IMG), seed=1)
" || fail "writing the data"

echo "== training UperNet ($BACKBONE, $SEG_ITERS iterations, amp $TRAIN_AMP) on $DEVICE"
T0=$(date +%s)
$PY -m mambaout train-seg --preset synthetic_shapes --device "$DEVICE" --quiet --json \
  --data-root "$WORK/ade" --backbone "$BACKBONE" --set tasks.segmentation.head.channels="$CHANNELS" \
  --set tasks.segmentation.head.aux_channels="$AUX_CHANNELS" --set "tasks.segmentation.data.crop_size=[$IMG, $IMG]" \
  --set "tasks.segmentation.data.scale=[$IMG, $IMG]" --set "tasks.segmentation.data.ratio_range=[0.5, 2.0]" \
  --set tasks.segmentation.data.num_workers="$WORKERS" --set train.batch_size="$BATCH" \
  --set sched.max_iters="$SEG_ITERS" --set sched.warmup_iters=$((SEG_ITERS < 100 ? 1 : 50)) --set optim.lr=5.0e-4 \
  --set train.amp="$TRAIN_AMP" --set train.eval_every_iters="$SEG_ITERS" \
  --set "tasks.segmentation.eval.crop=[$IMG, $IMG]" \
  --set "tasks.segmentation.eval.stride=[$((IMG * 3 / 4)), $((IMG * 3 / 4))]" \
  --set "tasks.segmentation.eval.ms_scales=[$SCALES]" --set train.log_every=100 --set train.metrics_every=100 \
  --output "$WORK/runs" --name seg \
  > "$WORK/seg_summary.json" 2> >(tee "$OUT/train_log.txt" >&2) || fail "train-seg"
T1=$(date +%s)
cp "$WORK/seg_summary.json" "$OUT/seg_summary.json"
cp "$WORK/runs/seg/metrics.jsonl" "$OUT/seg_metrics.jsonl" 2>/dev/null
echo "training took $((T1 - T0)) s"

echo "== single vs multi-scale + flip, amp x setting"
ARGS=()
[ "$BREAKDOWN" = 1 ] || ARGS+=(--no-breakdown)
$PY scripts/seg_msflip_eval.py "$WORK/runs/seg/last.pt" --device "$DEVICE" --amps "$AMPS" --scales "$SCALES" \
  --tolerance "$TOL" --train-summary "$WORK/seg_summary.json" --out "$OUT/msflip_eval.json" "${ARGS[@]}" \
  2> >(tee "$OUT/eval_log.txt" >&2) | tee "$OUT/msflip_table.txt"
EVAL_RC=${PIPESTATUS[0]}
[ -f "$OUT/msflip_eval.json" ] || fail "seg_msflip_eval.py (exit $EVAL_RC)"
T2=$(date +%s)

echo "== CLI cross-check: mambaout eval-seg --multi-scale (the checkpoint's amp: $TRAIN_AMP)"
$PY -m mambaout eval-seg "$WORK/runs/seg/last.pt" --device "$DEVICE" --multi-scale --quiet --json \
  > "$WORK/cli_ms.json" 2>> "$OUT/eval_log.txt" || fail "eval-seg --multi-scale"
$PY -m mambaout eval-seg "$WORK/runs/seg/last.pt" --device "$DEVICE" --quiet --json \
  > "$WORK/cli_single.json" 2>> "$OUT/eval_log.txt" || fail "eval-seg"
T3=$(date +%s)

$PY - "$WORK" "$OUT" "$((T1 - T0))" "$((T2 - T1))" "$((T3 - T2))" "$EVAL_RC" <<'EOF'
import datetime, json, sys
work, out, train_s, eval_s, cli_s, rc = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:])
summary, ev = json.load(open(f"{work}/seg_summary.json")), json.load(open(f"{out}/msflip_eval.json"))
cli = {k: json.load(open(f"{work}/cli_{k}.json"))["mIoU"] for k in ("single", "ms")}
final = summary.get("final") or summary.get("last_eval") or {}
res = dict(
    date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    card=ev["device"], torch=ev["torch"], backbone=ev["backbone"], train_amp=ev["train_amp"],
    steps=summary["steps"], train_seconds=train_s, eval_seconds=eval_s, cli_seconds=cli_s,
    in_training_single_mIoU=final.get("val_mIoU"), scales=ev["scales"],
    verdict=ev["verdict"], cli_eval_seg=dict(amp=ev["train_amp"], single=cli["single"], ms_flip=cli["ms"]),
    passed=bool(ev["passed"]) and cli["ms"] >= cli["single"] - ev["tolerance"],
)
json.dump(res, open(f"{out}/results_msflip.json", "w"), indent=2)
print(json.dumps(res, indent=2))
sys.exit(0 if res["passed"] and rc == 0 else 1)
EOF

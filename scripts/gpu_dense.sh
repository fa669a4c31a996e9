#!/usr/bin/env bash
# Short end-to-end GPU check of the dense tasks on generated data written in the real formats:
#   1. Mask R-CNN (MambaOut-Femto from scratch, standard FPN/RoI heads, FP16) on a COCO-format shapes set
#      (polygon + RLE masks), 12-epoch 1x-style schedule -> COCO box/mask AP (pycocotools); target box AP >= 0.5
#   2. UperNet (MambaOut-Femto, 512-ch UPerHead + aux FCN) on an ADE20K-layout shapes set -> mIoU
#      (4 classes: chance is about 0.25 or less); target far above chance
#   3. `mambaout predict` drawings of both on a validation image.
# Results (results_dense.json, logs, per-eval metrics, PNGs) go to $OUT (default runs/gpu_dense_out).
#
#   OUT=/tmp/out bash scripts/gpu_dense.sh                 # on a CUDA machine, from the repo root
#   DEVICE=cpu N_TRAIN=16 N_VAL=4 DET_EPOCHS=1 SEG_ITERS=4 IMG=64 BACKBONE=mambaout_test bash scripts/gpu_dense.sh
#
# pycocotools: if it is not importable and .whl/pycocotools-*.whl exists, it is installed into /tmp/site.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/gpu_dense_out}
WORK=${WORK:-/tmp/gpu_dense}
DEVICE=${DEVICE:-cuda}
BACKBONE=${BACKBONE:-mambaout_femto}
N_TRAIN=${N_TRAIN:-1000}
N_VAL=${N_VAL:-100}
IMG=${IMG:-128}
DET_EPOCHS=${DET_EPOCHS:-12}
SEG_ITERS=${SEG_ITERS:-1500}
WORKERS=${WORKERS:-6}
PY=${PYTHON:-python3}
mkdir -p "$OUT" "$WORK"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
if ! $PY -c "import pycocotools" 2>/dev/null && ls .whl/pycocotools-*.whl >/dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/pycocotools-*.whl
  export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi

echo "== writing data to $WORK"
$PY -c "
from mambaout.data.shapes import write_coco_shapes, write_ade_shapes
write_coco_shapes('$WORK/coco', $N_TRAIN, $N_VAL, ($IMG, $IMG), seed=0)
write_ade_shapes('$WORK/ade', $N_TRAIN, $N_VAL, ($IMG, $IMG), seed=1)
"

T0=$(date +%s)
if [ "${SKIP_DET:-0}" != 1 ]; then
echo "== detection"
$PY -m mambaout train-det --preset synthetic_shapes --device "$DEVICE" --quiet --json \
  --data-root "$WORK/coco" --backbone "$BACKBONE" --set "tasks.detection.head.rcnn={}" \
  --set tasks.detection.head.min_size=$((IMG * 2)) --set tasks.detection.head.max_size=$((IMG * 2)) \
  --set tasks.detection.data.num_workers="$WORKERS" --set train.batch_size=16 --set tasks.detection.eval.batch_size=8 \
  --set sched.epochs="$DET_EPOCHS" --set "sched.milestones=[$((DET_EPOCHS * 2 / 3)), $((DET_EPOCHS * 11 / 12))]" \
  --set sched.warmup_iters=100 --set optim.lr=5.0e-4 --set train.amp=fp16 \
  --set train.eval_every=$(( (DET_EPOCHS + 2) / 3 )) --set train.log_every=50 --set train.metrics_every=50 \
  --output "$WORK/runs" --name det \
  > "$WORK/det_summary.json" 2> >(tee "$OUT/det_log.txt" >&2)
T1=$(date +%s)
cp "$WORK/runs/det/metrics.jsonl" "$OUT/det_metrics.jsonl"
fi

echo "== segmentation"
$PY -m mambaout train-seg --preset synthetic_shapes --device "$DEVICE" --quiet --json \
  --data-root "$WORK/ade" --backbone "$BACKBONE" --set tasks.segmentation.head.channels=512 \
  --set tasks.segmentation.head.aux_channels=256 --set "tasks.segmentation.data.crop_size=[$IMG, $IMG]" \
  --set "tasks.segmentation.data.scale=[$IMG, $IMG]" --set "tasks.segmentation.data.ratio_range=[0.5, 2.0]" \
  --set tasks.segmentation.data.num_workers="$WORKERS" --set train.batch_size=16 --set sched.max_iters="$SEG_ITERS" \
  --set sched.warmup_iters=50 --set optim.lr=5.0e-4 --set train.amp=fp16 \
  --set train.eval_every_iters=$((SEG_ITERS / 2)) --set "tasks.segmentation.eval.crop=[$IMG, $IMG]" \
  --set "tasks.segmentation.eval.stride=[$((IMG * 3 / 4)), $((IMG * 3 / 4))]" --set train.log_every=100 \
  --set train.metrics_every=100 --output "$WORK/runs" --name seg \
  > "$WORK/seg_summary.json" 2> >(tee "$OUT/seg_log.txt" >&2)
T2=$(date +%s)
cp "$WORK/runs/seg/metrics.jsonl" "$OUT/seg_metrics.jsonl"

echo "== multi-scale + flip segmentation eval, predictions"
$PY -m mambaout eval-seg "$WORK/runs/seg/last.pt" --device "$DEVICE" --multi-scale --quiet --json \
  --set "tasks.segmentation.eval.ms_scales=[0.75, 1.0, 1.25]" > "$WORK/seg_ms.json"
[ "${SKIP_DET:-0}" = 1 ] || \
  $PY -m mambaout predict "$WORK/runs/det/last.pt" "$WORK/coco/val/000000.png" -o "$OUT/det_pred.png" --device "$DEVICE"
$PY -m mambaout predict "$WORK/runs/seg/last.pt" "$WORK/ade/images/validation/ADE_000000.jpg" -o "$OUT/seg_pred.png" \
  --device "$DEVICE"

[ "${SKIP_DET:-0}" = 1 ] && exit 0
$PY - "$WORK" "$OUT" "$((T1 - T0))" "$((T2 - T1))" <<'EOF'
import datetime, json, sys
import torch, timm
work, out, det_s, seg_s = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
det, seg, ms = (json.load(open(f"{work}/{n}.json")) for n in ("det_summary", "seg_summary", "seg_ms"))
d, s = (x.get("final") or x.get("last_eval") for x in (det, seg))  # "final" since the shared engine
res = dict(
    date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    card=torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
    torch=torch.__version__, timm=timm.__version__,
    detection=dict(steps=det["steps"], seconds=det_s, box_AP=d["val_bbox_AP"], box_AP50=d["val_bbox_AP50"],
                   mask_AP=d.get("val_segm_AP"), mask_AP50=d.get("val_segm_AP50"), best=det["best"],
                   target="box AP >= 0.5", passed=d["val_bbox_AP"] >= 0.5),
    segmentation=dict(steps=seg["steps"], seconds=seg_s, mIoU=s["val_mIoU"], mAcc=s["val_mAcc"], aAcc=s["val_aAcc"],
                      mIoU_ms_flip=ms["mIoU"], num_classes=4, target="mIoU far above chance (>= 0.6)",
                      passed=s["val_mIoU"] >= 0.6),
)
json.dump(res, open(f"{out}/results_dense.json", "w"), indent=2)
print(json.dumps(res, indent=2))
EOF

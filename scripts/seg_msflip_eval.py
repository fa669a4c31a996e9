"""Single-scale vs multi-scale + flip mIoU of one segmentation checkpoint under AMP none / bf16 / fp16.

    PYTHONPATH=src python scripts/seg_msflip_eval.py runs/seg/last.pt --device cuda --out results.json \\
        [--scales 0.75,1.0,1.25] [--amps none,bf16,fp16] [--no-breakdown] [--train-summary seg_summary.json]

Headline rows go through the same function as ``mambaout eval-seg [--multi-scale]``
(``tasks.dense.segmentation.evaluate_task``). The breakdown rows (flip only, each ratio alone, and the
pre-fix code path "legacy": autocast around the whole aug test, floor-rounded sizes, softmax summed at the
resized image's size then resized to the label) show where a drop comes from. ``nonfinite`` counts the
network's forwards (under that AMP) whose logits held inf/NaN; the engine recomputes those in fp32.
fp16 on a CPU is skipped (the engine runs CPU fp16 in fp32).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from types import SimpleNamespace

import torch
import torch.nn.functional as F

from mambaout.engine.precision import AMP_DTYPES
from mambaout.models.upernet import _resize
from mambaout.tasks.dense import segmentation as seg
from mambaout.tasks.dense.metrics import ConfusionMatrix
from mambaout.tasks.dense.task import load_trained


class Counting(torch.nn.Module):
    """The segmentor, counting its forwards and those with non-finite logits."""

    def __init__(self, net):
        super().__init__()
        self.net, self.size_divisor = net, net.size_divisor
        self.calls = self.nonfinite = 0

    def forward(self, x):
        y = self.net(x)
        self.calls += 1
        self.nonfinite += int(not bool(torch.isfinite(y).all()))
        return y


# --- the pre-fix path (commit d2bf848 models/upernet.py + tasks/dense/segmentation.py), for comparison ----


def _legacy_padded(model, x):
    d = model.size_divisor
    h, w = x.shape[-2:]
    hp, wp = -(-h // d) * d, -(-w // d) * d
    xp = F.pad(x, (0, wp - w, 0, hp - h)) if (hp, wp) != (h, w) else x
    return model(xp)[..., :h, :w]


def _legacy_slide(model, x, crop, stride):
    (ch, cw), (sh, sw) = crop, stride
    b, _, h, w = x.shape
    gh, gw = max(h - ch + sh - 1, 0) // sh + 1, max(w - cw + sw - 1, 0) // sw + 1
    out, count = None, x.new_zeros((b, 1, h, w))
    for i in range(gh):
        for j in range(gw):
            y2, x2 = min(i * sh + ch, h), min(j * sw + cw, w)
            y1, x1 = max(y2 - ch, 0), max(x2 - cw, 0)
            logit = _legacy_padded(model, x[:, :, y1:y2, x1:x2])
            out = x.new_zeros((b, logit.shape[1], h, w)) if out is None else out
            out[:, :, y1:y2, x1:x2] += logit
            count[:, :, y1:y2, x1:x2] += 1
    return out / count


def _legacy_predict(model, x, mode, crop, stride, scales, flip):
    h, w = x.shape[-2:]
    total = None
    for s in scales:
        xs = x if s == 1.0 else F.interpolate(x, scale_factor=s, mode="bilinear", align_corners=False)
        for flipped in (False, True) if flip else (False,):
            xi = xs.flip(-1) if flipped else xs
            logit = _legacy_slide(model, xi, crop, stride) if mode == "slide" else _legacy_padded(model, xi)
            logit = logit.flip(-1) if flipped else logit
            prob = _resize(logit, (h, w)).softmax(1)
            total = prob if total is None else total + prob
    return total


@torch.no_grad()
def legacy_evaluate(model, dataset, device, sec, scales, flip, amp):
    model.eval()
    cm, ev = ConfusionMatrix(sec.num_classes), sec.eval
    ctx = torch.autocast(device.type, dtype=AMP_DTYPES[amp]) if amp else torch.autocast(device.type, enabled=False)
    for i in range(len(dataset)):
        image, label = dataset[i]
        with ctx:
            prob = _legacy_predict(model, image[None].to(device), ev.mode, ev.crop, ev.stride, scales, flip)
        prob = F.interpolate(prob.float(), size=label.shape, mode="bilinear", align_corners=False)
        cm.update(prob.argmax(1)[0], label)
    return cm.compute()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("checkpoint")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--scales", default=None, help="comma-separated ratios (default: the checkpoint's ms_scales)")
    p.add_argument("--amps", default="none,bf16,fp16")
    p.add_argument("--no-breakdown", action="store_true", help="only single and ms+flip per AMP")
    p.add_argument("--train-summary", help="train-seg --json output: its in-training single-scale mIoU is shown")
    p.add_argument("--tolerance", type=float, default=0.005, help="ms+flip may be this much below single")
    p.add_argument("--out", help="JSON results file")
    a = p.parse_args(argv)

    device = torch.device(a.device)
    model, cfg = load_trained(a.checkpoint, device)
    sec = cfg.tasks.segmentation
    if a.scales:
        sec.eval.ms_scales = [float(s) for s in a.scales.split(",")]
    sec.eval.ms_flip = True
    _, val = seg.datasets(sec, cfg.train.seed)
    net = Counting(model.heads["segmentation"])
    shim = SimpleNamespace(heads={"segmentation": net})
    scales = list(sec.eval.ms_scales)
    ev = sec.eval
    info = dict(
        checkpoint=a.checkpoint,
        device=torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        torch=torch.__version__,
        backbone=cfg.backbone.name,
        train_amp=cfg.train.amp,
        val_images=len(val),
        val_image_size=list(val[0][0].shape[-2:]),
        mode=ev.mode,
        crop=list(ev.crop),
        stride=list(ev.stride),
        scales=scales,
        size_divisor=net.size_divisor,
    )
    if a.train_summary:
        with open(a.train_summary) as f:
            summary = json.load(f)
        last = summary.get("final") or summary.get("last_eval") or {}  # "final" since the shared engine
        info["in_training_single_mIoU"] = last.get("val_mIoU")
    print(json.dumps(info), flush=True)

    def one(amp, name, fn):
        net.calls = net.nonfinite = 0
        t = time.time()
        r = fn()
        row = dict(
            amp=amp or "none",
            setting=name,
            mIoU=r["mIoU"],
            mAcc=r["mAcc"],
            aAcc=r["aAcc"],
            forwards=net.calls,
            nonfinite=net.nonfinite,
            seconds=round(time.time() - t, 2),
        )
        print(
            f"{row['amp']:<5} {name:<16} mIoU {row['mIoU']:.4f}  mAcc {row['mAcc']:.4f}  aAcc {row['aAcc']:.4f}  "
            f"forwards {row['forwards']:>5}  nonfinite {row['nonfinite']:>4}  {row['seconds']:6.1f}s",
            flush=True,
        )
        return row

    def engine(amp, sc, flip):
        run = SimpleNamespace(device=device, amp=amp, quiet=True)
        if sc is None:  # exactly eval-seg: single scale, or --multi-scale (ms_scales, ms_flip)
            return lambda: seg.evaluate_task(shim, val, sec, run, multi_scale=flip)
        return lambda: seg.evaluate(net, val, device, sec.num_classes, ev.mode, ev.crop, ev.stride, sc, flip, amp)

    rows, verdict = [], {}
    for amp_name in a.amps.split(","):
        amp = None if amp_name in ("none", "fp32", "") else amp_name
        if amp == "fp16" and device.type != "cuda":
            print(f"{amp_name:<5} skipped: fp16 autocast needs CUDA (the engine runs it in fp32 on {device.type})")
            continue
        single = one(amp, "single", engine(amp, None, False))
        msflip = one(amp, "ms+flip", engine(amp, None, True))
        rows += [single, msflip]
        verdict[amp or "none"] = dict(
            single=single["mIoU"],
            ms_flip=msflip["mIoU"],
            passed=msflip["mIoU"] >= single["mIoU"] - a.tolerance,
        )
        if a.no_breakdown:
            continue
        rows.append(one(amp, "flip (1.0)", engine(amp, [1.0], True)))
        for s in scales:
            if s != 1.0:
                rows.append(one(amp, f"scale {s:g}", engine(amp, [s], False)))
        rows.append(one(amp, "ms (no flip)", engine(amp, scales, False)))
        rows.append(
            one(amp, "legacy single", lambda amp=amp: legacy_evaluate(net, val, device, sec, [1.0], False, amp))
        )
        rows.append(
            one(amp, "legacy ms+flip", lambda amp=amp: legacy_evaluate(net, val, device, sec, scales, True, amp))
        )
    ok = all(v["passed"] for v in verdict.values())
    print(f"ms+flip >= single - {a.tolerance} under every AMP: {'PASSED' if ok else 'FAILED'}", flush=True)
    if a.out:
        with open(a.out, "w") as f:
            json.dump(dict(info, rows=rows, verdict=verdict, passed=ok, tolerance=a.tolerance), f, indent=2)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""Experiment dense-long: does the SSM pay off as dense tasks get long? (issue #23; docs/scenes.md)

For each scene side S and each variant of the Fashion-MNIST scenes (local: an item's class is its own;
context: every item takes the class of a framed marker item at least S/4 away), the scenes are written to
disk (``data/scenes.py``) and read back with the ordinary ADE20K and COCO readers. UperNet (segmentation
view) and Mask R-CNN (detection view) are trained over each backbone of the preset -- MambaOut, its SSM
pair, and in full mode one VMamba-style and one windowed LocalMamba-style net -- with the other backbones'
widths scaled to match the SSM pair's parameters (5%). Same steps, batch, optimiser and schedule per S
(the lab's ``run_group``), seeds as given.

Per cell: mIoU and item-pixel accuracy (context: on non-marker item pixels, the quantity the card's bound is
about), box AP and mask AP, training and inference throughput, peak memory (CUDA only), and per stage L and
L/6D. Figures: accuracy gap (SSM - MambaOut) vs the stride-16 stage's L/6D; cost ratio (SSM / MambaOut) vs L.
"""

from __future__ import annotations

import math
import os
import time
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from ..analysis.complexity import stage_tokens
from ..bench.timing import sync
from ..data.detection import CocoInstances
from ..data.masks import decode_segmentation
from ..data.scenes import SceneSpec, scene_paths, write_scenes
from ..data.segmentation import ADE20K
from ..errors import LabError
from ..models.dense_backbone import ChannelsFirstLayerNorm
from ..models.localmamba import localvmamba
from ..models.mamba_pairs import mamba_net
from ..models.mambaout import gated_net
from ..models.mask_rcnn import mask_rcnn_on
from ..models.upernet import UperNet
from ..models.vmamba import vmamba_v0
from ..tasks.dense.detection import evaluate as coco_ap
from ..tasks.dense.metrics import ConfusionMatrix
from ..utils.table import markdown_table
from .core import with_verdict_rules
from .models import match_width, param_count
from .report import _plt, write_csv, write_json, write_report
from .runner import mean_std, run_group, values
from .stats import paired_t
from .verdicts import comparison, comparisons_table, decide, rules_text

KINDS = ("mambaout", "mamba", "vmamba", "localmamba")
NAMES = dict(
    mambaout="MambaOut (no SSM)", mamba="MambaOut + SSM", vmamba="VMamba-style (cross scan)", localmamba="LocalMamba"
)
NUM_CLASSES = 11  # background + the 10 Fashion-MNIST classes
MEAN, STD = 0.5, 0.25  # scenes are mid-grey on average


class Trunk(nn.Module):
    """A hierarchical lab backbone as a dense trunk: 4 NCHW maps, a LayerNorm each (as DenseBackbone)."""

    def __init__(self, spec: dict, scale: float | None = None):
        super().__init__()
        spec = dict(spec)
        kind = spec.pop("kind")
        dims = [max(1, round(d * scale)) for d in spec["dims"]] if scale else list(spec["dims"])
        common = dict(in_chans=3, features_only=True, drop_path_rate=0.0)
        if kind == "mambaout":
            self.body = gated_net(spec["depths"], dims, mixer_kwargs=dict(kernel_size=7), **common)
        elif kind == "mamba":
            self.body = mamba_net(spec["depths"], dims, d_state=spec.get("d_state", 16), **common)
        elif kind == "vmamba":
            self.body = vmamba_v0(spec["depths"], dims, d_state=spec.get("d_state", 16), **common)
        elif kind == "localmamba":
            self.body = localvmamba(spec["depths"], dims, d_state=spec.get("d_state", 16), **common)
        else:
            raise LabError(f"unknown dense-long backbone kind {kind!r}; known: {', '.join(KINDS)}")
        self.channels = [f["num_chs"] for f in self.body.feature_info]
        self.strides = [f["reduction"] for f in self.body.feature_info]
        self.size_divisor = self.body.size_divisor
        self.norms = nn.ModuleList([ChannelsFirstLayerNorm(c) for c in self.channels])

    def forward(self, x):
        return [n(f) for n, f in zip(self.norms, self.body(x))]


class Detector(nn.Module):
    """Mask R-CNN behind the lab trainer's ``model(x)`` call: x = (images, targets) -> the loss dict."""

    def __init__(self, trunk: Trunk, head: dict, size: int):
        super().__init__()
        small = dict(
            rpn_pre_nms_top_n_train=200,
            rpn_post_nms_top_n_train=100,
            rpn_pre_nms_top_n_test=200,
            rpn_post_nms_top_n_test=100,
            box_batch_size_per_image=128,
            rpn_batch_size_per_image=128,
            box_detections_per_img=100,
        )
        self.rcnn = mask_rcnn_on(trunk, NUM_CLASSES, min_size=size, max_size=size, **{**small, **head})

    def forward(self, x):
        return self.rcnn(*x)


def _build(view: str, spec: dict, scale, cfg: dict, size: int) -> nn.Module:
    trunk = Trunk(spec, scale)
    if view == "segmentation":
        h = cfg["head"]
        return UperNet(trunk, NUM_CLASSES, channels=h["channels"], aux=False)
    return Detector(trunk, dict(cfg["det_head"]), size)


class SceneData:
    """One (S, variant) scene set, written to disk and read back once with the ADE20K and COCO readers into
    compact tensors (uint8 images and labels, an int16 instance map per training scene), so batches cost
    no decoding inside the timed training loop and S = 1024 sets fit in memory."""

    def __init__(self, root: str, spec: SceneSpec, n_train: int, n_val: int, fashion_root, device):
        self.card = write_scenes(root, spec, n_train, n_val, seed=0, fashion_root=fashion_root)
        self.device, self.size = device, spec.size
        paths = scene_paths(root)
        self.seg_train, self.seg_val = (self._read_seg(root, split) for split in ("training", "validation"))

        def det(split, train):
            p = paths[split]
            return CocoInstances(os.path.join(root, p["images"]), os.path.join(root, p["ann"]), train=train)

        train_set, self.det_val = det("training", True), det("validation", False)
        names = [os.path.basename(a) for a, _ in ADE20K(root, "training", num_classes=NUM_CLASSES).pairs]
        if [im["file_name"] for im, _ in train_set.records] != names:
            raise LabError(f"{root}: the COCO and ADE20K readers list the training scenes in different orders")
        self.det_train = []  # (boxes, labels, instance map: 0 = none, k + 1 = object k) per training scene
        for i in range(len(train_set)):
            _, t = train_set[i]
            inst = torch.zeros(spec.size, spec.size, dtype=torch.int16)
            for k, m in enumerate(t["masks"]):
                inst[m.bool()] = k + 1
            self.det_train.append((t["boxes"], t["labels"], inst))
        # pixels whose label the context bound is about: non-marker items (local: every item)
        self.scored = torch.zeros(self.seg_val[1].shape, dtype=torch.bool)
        index = {im["id"]: k for k, (im, _) in enumerate(self.det_val.records)}
        for a in self.det_val.coco_gt["annotations"]:
            if not a.get("marker"):
                m = decode_segmentation(a["segmentation"], spec.size, spec.size)
                self.scored[index[a["image_id"]]] |= torch.from_numpy(m.astype(bool))

    @staticmethod
    def _read_seg(root: str, split: str):
        ds = ADE20K(root, split, reduce_zero_label=False, num_classes=NUM_CLASSES)
        images, labels = [], []
        for i in range(len(ds)):
            x, y = ds[i]
            images.append((x * 255).round().to(torch.uint8))  # the PNG's own values back
            labels.append(y.to(torch.uint8))
        return torch.stack(images), torch.stack(labels)

    def float_images(self, x_uint8: torch.Tensor) -> torch.Tensor:
        return x_uint8.to(self.device).float() / 255


class SegView:
    """UperNet training batches and metrics for the lab trainer."""

    metric = "mIoU"

    def __init__(self, data: SceneData, batch_size: int):
        self.data, self.batch_size = data, batch_size

    def batches(self, seed: int):
        if self.data.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.data.device)
        x, y = self.data.seg_train
        g = torch.Generator().manual_seed(seed)
        while True:
            i = torch.randint(len(x), (self.batch_size,), generator=g)
            yield (self.data.float_images(x[i]) - MEAN) / STD, y[i].to(self.data.device).long()

    def loss(self, logits, y):
        return F.cross_entropy(logits, y, ignore_index=255)

    @torch.no_grad()
    def evaluate(self, model) -> dict:
        peak = _peak_mb(self.data.device)
        model.eval()
        x, y = self.data.seg_val
        cm, right, scored = ConfusionMatrix(NUM_CLASSES), 0, 0
        sync(self.data.device)
        t0 = time.perf_counter()
        for i in range(0, len(x), self.batch_size):
            xb = (self.data.float_images(x[i : i + self.batch_size]) - MEAN) / STD
            pred = model(xb).argmax(1).cpu()
            yb, sb = y[i : i + self.batch_size].long(), self.data.scored[i : i + self.batch_size]
            cm.update(pred, yb)
            right += int((pred == yb)[sb].sum())
            scored += int(sb.sum())
        sync(self.data.device)
        infer_s = time.perf_counter() - t0
        res = cm.compute()
        return dict(
            mIoU=100 * res["mIoU"],
            item_acc=100 * right / max(scored, 1),
            infer_ips=len(x) / infer_s,
            peak_mb=peak,
        )


class DetView:
    """Mask R-CNN training batches (lists of images and targets) and COCO AP for the lab trainer."""

    metric = "box_AP"

    def __init__(self, data: SceneData, batch_size: int):
        self.data, self.batch_size = data, batch_size

    def batches(self, seed: int):
        if self.data.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.data.device)
        dev, images = self.data.device, self.data.seg_train[0]
        g = torch.Generator().manual_seed(seed)
        while True:
            idx = torch.randint(len(images), (self.batch_size,), generator=g).tolist()
            xs, targets = [], []
            for i in idx:
                boxes, labels, inst = self.data.det_train[i]
                inst = inst.to(dev)
                ids = torch.arange(1, len(labels) + 1, device=dev, dtype=inst.dtype)
                masks = (inst[None] == ids[:, None, None]).to(torch.uint8)
                xs.append(self.data.float_images(images[i]))
                targets.append(dict(boxes=boxes.to(dev), labels=labels.to(dev), masks=masks))
            yield (xs, targets), None

    def loss(self, losses: dict, _):
        return sum(losses.values())

    def evaluate(self, model) -> dict:
        peak = _peak_mb(self.data.device)
        sync(self.data.device)
        t0 = time.perf_counter()
        ap = coco_ap(model.rcnn, self.data.det_val, self.data.device, batch_size=self.batch_size)
        sync(self.data.device)
        infer_s = time.perf_counter() - t0  # includes COCOeval (host)
        return dict(
            box_AP=100 * ap["bbox_AP"],
            mask_AP=100 * ap.get("segm_AP", float("nan")),
            infer_ips=len(self.data.det_val) / infer_s,
            peak_mb=peak,
        )


def _peak_mb(device) -> float:
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else float("nan")


def _cells(cfg: dict, view: str, size: int) -> list[dict]:
    """One cell per backbone; every backbone other than the SSM pair scaled to the pair's trunk parameters."""
    specs = cfg["models"]
    if "mamba" not in specs or "mambaout" not in specs:
        raise LabError("dense-long: models must name at least 'mambaout' and 'mamba' (its SSM pair)")

    def trunk_params(spec, scale=None):
        with torch.device("meta"):
            return param_count(Trunk(spec, scale))

    target = trunk_params(specs["mamba"])
    cells = []
    for key, spec in specs.items():
        scale = None
        if key != "mamba":
            guess = (target / trunk_params(spec)) ** 0.5  # params grow about as width^2: search around it
            scale = match_width(
                lambda w, s=spec: Trunk(s, w), target, candidates=[guess * (1 + j / 100) for j in range(-8, 9)]
            )["width"]
        build = partial(_build, view, spec, scale, cfg, size)
        with torch.device("meta"):
            total = param_count(build())
        with torch.device("meta"):
            body = Trunk(spec, scale).body
        cells.append(
            dict(
                label=key,
                model=key,
                variant=view,
                params=total,
                trunk_params=trunk_params(spec, scale),
                scale=scale,
                build=build,
                stages=stage_tokens(body, size, size),
            )
        )
    return cells


def _stage16(cell: dict) -> dict:
    """The stride-16 stage (the paper's patch-16 sequence): stage 3 of a 4-stage net."""
    return cell["stages"][2]


def _summaries(rows: list[dict], cells: dict, sizes, variants, views, seeds) -> list[dict]:
    out = []
    for size in sizes:
        for variant in variants:
            for view in views:
                sub = [r for r in rows if r["size"] == size and r["variant"] == variant and r["view"] == view]
                if not sub:
                    continue
                key = (size, view)
                base = {}
                for label in dict.fromkeys(r["label"] for r in sub):
                    st = _stage16(cells[key][label])
                    entry = dict(size=size, variant=variant, view=view, model=label, L16=st["tokens"], r16=st["ratio"])
                    entry["params"] = cells[key][label]["params"]
                    for m in ("mIoU", "item_acc", "box_AP", "mask_AP", "train_ips", "infer_ips", "peak_mb"):
                        ms = mean_std(values(sub, label, m))
                        entry[m], entry[m + "_std"] = ms["mean"], ms["std"]
                    entry["n"] = len(values(sub, label, "train_ips"))
                    if label == "mambaout":
                        base = entry
                    out.append(entry)
                for e in out:
                    if (e["size"], e["variant"], e["view"]) != (size, variant, view) or e["model"] == "mambaout":
                        continue
                    if base:
                        e["train_cost_ratio"] = base["train_ips"] / e["train_ips"] if e["train_ips"] else float("nan")
                        e["infer_cost_ratio"] = base["infer_ips"] / e["infer_ips"] if e["infer_ips"] else float("nan")
                        e["mem_ratio"] = e["peak_mb"] / base["peak_mb"] if base["peak_mb"] else float("nan")
    return out


def _by_seed(rows, label: str, metric: str, **where) -> dict:
    """{seed: value} of one backbone's cells (failed runs left out)."""
    return {
        r["seed"]: r[metric]
        for r in rows
        if r["label"] == label and "error" not in r and metric in r and all(r[k] == v for k, v in where.items())
    }


def _seed_gaps(rows, model: str, metric: str, **where) -> dict:
    """{seed: model - MambaOut} (the same seed: the same scenes and batch order)."""
    a, b = _by_seed(rows, "mambaout", metric, **where), _by_seed(rows, model, metric, **where)
    return {k: b[k] - a[k] for k in a if k in b}


def _add_gaps(summary: list[dict], rows: list[dict]) -> None:
    """Each non-MambaOut entry's gap to MambaOut, paired by seed (mean and SE of the per-seed differences)."""
    for e in summary:
        if e["model"] == "mambaout":
            continue
        where = dict(size=e["size"], variant=e["variant"], view=e["view"])
        metric = "mIoU" if e["view"] == "segmentation" else "box_AP"
        w = paired_t(_by_seed(rows, "mambaout", metric, **where), _by_seed(rows, e["model"], metric, **where))
        e["gap"], e["gap_se"], e["outcome"] = w["diff"], w["se"], "-"
        if e["view"] == "segmentation":
            e["acc_gap"] = paired_t(*(_by_seed(rows, k, "item_acc", **where) for k in ("mambaout", e["model"])))["diff"]


def _figures(summary: list[dict], out: str) -> list[str]:
    plt = _plt()
    ssm = [e for e in summary if e["model"] != "mambaout" and "gap" in e]
    views = list(dict.fromkeys(e["view"] for e in ssm))
    fig, axes = plt.subplots(1, max(1, len(views)), figsize=(5.5 * max(1, len(views)), 4), squeeze=False)
    for ax, view in zip(axes[0], views):
        for variant, ls in (("local", "--"), ("context", "-")):
            for model in dict.fromkeys(e["model"] for e in ssm):
                pts = sorted(
                    (e["r16"], e["gap"], e["gap_se"] or 0.0)
                    for e in ssm
                    if e["view"] == view and e["variant"] == variant and e["model"] == model
                )
                if pts:
                    xs, ys, se = zip(*pts)
                    ax.errorbar(xs, ys, yerr=se, ls=ls, marker="o", capsize=3, label=f"{NAMES[model]}, {variant}")
        ax.axhline(0, color="k", lw=0.8)
        ax.axvline(1, color="grey", lw=0.8, ls=":")
        ax.set_xscale("log")
        ax.set_xlabel("L / 6D of the stride-16 stage (SSM model)")
        ax.set_ylabel(("mIoU" if view == "segmentation" else "box AP") + " gap: SSM - MambaOut (points)")
        ax.set_title(f"{view}: accuracy gap vs L/6D (±1 SE over seeds)", fontsize=9)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "gap_vs_ratio.png"), dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    for view, marker in (("segmentation", "o"), ("detection", "s")):
        for model in dict.fromkeys(e["model"] for e in ssm):
            for key, ls in (("train_cost_ratio", "-"), ("infer_cost_ratio", "--")):
                pts = {}
                for e in ssm:
                    if e["view"] == view and e["model"] == model and math.isfinite(e.get(key, float("nan"))):
                        pts.setdefault(e["L16"], []).append(e[key])  # both variants: same shapes, averaged
                if pts:
                    xs = sorted(pts)
                    ax.plot(
                        xs,
                        [sum(pts[x]) / len(pts[x]) for x in xs],
                        ls=ls,
                        marker=marker,
                        label=f"{NAMES[model]} {view[:3]} {key.split('_')[0]}",
                    )
    ax.axhline(1, color="k", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("tokens L of the stride-16 stage")
    ax.set_ylabel("time ratio SSM / MambaOut (per image)")
    ax.set_title("cost ratio vs L (solid: training, dashed: inference)", fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "cost_vs_L.png"), dpi=110)
    plt.close(fig)
    return ["gap_vs_ratio.png", "cost_vs_L.png"]


# A cell "learned" when its local-variant metric passes this bar (item accuracy: twice the 10-class chance);
# below it, no accuracy verdict is drawn (an untrained pair shows "no clear difference" for no reason).
LEARNED = {"segmentation": ("item_acc", 20.0), "detection": ("box_AP", 5.0)}


def _undertrained(summary: list[dict], size: int, view: str) -> bool:
    metric, bar = LEARNED[view]
    local = [e for e in summary if (e["size"], e["view"], e["variant"]) == (size, view, "local")]
    return not local or any(not e[metric] >= bar for e in local if e["model"] in ("mambaout", "mamba"))


def _claims(rows: list[dict], summary: list[dict], cfg: dict) -> tuple[list[dict], dict]:
    """The three claims on MambaOut vs its SSM pair, every comparison paired by seed (:mod:`.verdicts`)."""
    vc = cfg["verdict"]
    m, alpha = vc["margins"], vc["alpha"]
    pair = sorted((e for e in summary if e["model"] == "mamba"), key=lambda e: (e["view"] != "segmentation", e["size"]))
    records, claims = {}, []

    def rec(key, a_name, b_name, a, b, margin):
        records[key] = comparison(key, a_name, b_name, a, b, margin, True, alpha, paired=True)
        return key

    def level(e):
        metric = "mIoU" if e["view"] == "segmentation" else "box_AP"
        where = dict(size=e["size"], variant=e["variant"], view=e["view"])
        key = f"dense-long:{e['view']}:{e['variant']}:S{e['size']}"
        e["record"] = key
        return rec(
            key,
            "MambaOut",
            f"SSM pair {e['view'][:3]} {metric} S={e['size']}",
            _by_seed(rows, "mambaout", metric, **where),
            _by_seed(rows, "mamba", metric, **where),
            m[metric],
        )

    def untrained(es):
        bad = [f"{e['view'][:3]} S={e['size']}" for e in es if _undertrained(summary, e["size"], e["view"])]
        bars = ", ".join(f"{k} >= {b:g}" for k, b in LEARNED.values())
        return f"not seen (undertrained on the local variant: {', '.join(bad)}; bar {bars})" if bad else None

    local = [e for e in pair if e["variant"] == "local"]
    if local:
        claims.append(
            dict(
                claim="dense-long: on local scenes the SSM does not pay off (SSM − MambaOut equivalent or worse)",
                rule="no_gain",
                comparisons=[level(e) for e in local],
                blocked=untrained(local),
            )
        )
    context = [e for e in pair if e["variant"] == "context"]
    if context:
        keys = [level(e) for e in context]
        for view in dict.fromkeys(e["view"] for e in context):
            metric = "mIoU" if view == "segmentation" else "box_AP"
            es = [e for e in context if e["view"] == view]
            for lo, hi in zip(es[:-1], es[1:]):
                gaps = [
                    _seed_gaps(rows, "mamba", metric, size=e["size"], variant="context", view=view) for e in (lo, hi)
                ]
                keys.append(
                    rec(
                        f"dense-long:{view}:context:growth:S{lo['size']}-S{hi['size']}",
                        f"gap at S={lo['size']}",
                        f"{view[:3]} {metric} gap at S={hi['size']}",
                        *gaps,
                        m[metric],
                    )
                )
        claims.append(
            dict(
                claim="dense-long: on context scenes the SSM pays off, more so as L/6D grows",
                rule="gain_grows",
                levels=len(context),
                comparisons=keys,
                blocked=untrained(context),
            )
        )
    seg_sizes = sorted({e["size"] for e in pair if e["view"] == "segmentation"})
    if seg_sizes:
        keys = []
        lo, hi = seg_sizes[0], seg_sizes[-1]
        for variant in dict.fromkeys(e["variant"] for e in pair):

            def ratio(size, variant=variant):
                where = dict(size=size, variant=variant, view="segmentation")
                a, b = _by_seed(rows, "mambaout", "train_ips", **where), _by_seed(rows, "mamba", "train_ips", **where)
                return {k: a[k] / b[k] for k in a if k in b and b[k]}

            keys.append(
                rec(
                    f"dense-long:cost:{variant}:S{lo}-S{hi}",
                    f"S={lo}",
                    f"seg {variant} training-time ratio at S={hi}",
                    ratio(lo),
                    ratio(hi),
                    m["cost_ratio"],
                )
            )
        claims.append(
            dict(
                claim="dense-long: the SSM's training cost relative to MambaOut grows with L",
                rule="gain",
                comparisons=keys,
                blocked="inconclusive (one S)" if len(seg_sizes) < 2 else None,
            )
        )
    for c in claims:
        c["rule_text"] = vc["rules"][c["rule"]]
    return claims, records


def run(ctx, cfg: dict) -> dict:
    out = ctx.folder("dense-long")
    seeds, sizes = list(cfg["seeds"]), [int(s) for s in cfg["sizes"]]
    variants, views = list(cfg["variants"]), list(cfg["views"])
    for v in views:
        if v not in ("segmentation", "detection"):
            raise LabError(f"dense-long: unknown view {v!r}; known: segmentation, detection")
    d = cfg["data"]
    optim = dict(cfg["optim"])
    rows, cells_by, data_cards, plans = [], {}, {}, {}
    t0 = time.time()
    for size in sizes:
        for view in views:  # built for every size: the per-stage table covers them all
            cells_by[(size, view)] = {c["label"]: c for c in _cells(cfg, view, size)}
        for variant in variants:
            spec = SceneSpec(size=size, variant=variant, max_overlap=d.get("max_overlap", 0.2), items=d.get("items"))
            root = os.path.join(out, "data", f"S{size}-{variant}")
            data = SceneData(root, spec, d["train_scenes"], d["val_scenes"], ctx.data_root, ctx.device)
            data_cards[f"S{size}-{variant}"] = dict(spec=data.card["spec"], bound=data.card["bound"])
            for view in views:
                if size not in cfg.get("view_sizes", {}).get(view, sizes):
                    continue
                task = SegView(data, cfg["batch_size"]) if view == "segmentation" else DetView(data, cfg["batch_size"])
                steps = int(cfg["steps"][view] if isinstance(cfg["steps"], dict) else cfg["steps"])
                cells = list(cells_by[(size, view)].values())
                res = run_group(f"S{size}-{variant}-{view}", cells, task, seeds, steps, None, ctx.device, optim)
                plans[f"S{size}-{variant}-{view}"] = res["plan"]["steps"]
                for r in res["rows"]:
                    r.pop("curve", None)
                    r.update(size=size, variant=variant, view=view)
                    if "train_s" in r:
                        r["train_ips"] = r["steps"] * cfg["batch_size"] / r["train_s"]
                    rows.append(r)
    summary = _summaries(rows, cells_by, sizes, variants, views, seeds)
    stage_rows = [
        dict(size=size, view=view, model=label, params=c["params"], trunk_params=c["trunk_params"], **st)
        for (size, view), cs in cells_by.items()
        for label, c in cs.items()
        for st in c["stages"]
    ]
    write_csv(rows, os.path.join(out, "runs.csv"))
    write_csv(stage_rows, os.path.join(out, "stage_tokens.csv"))
    saved = dict(config=cfg, rows=rows, summary=summary, stages=stage_rows, data=data_cards, steps=plans)
    return _report(out, saved, time.time() - t0, str(ctx.device))


def rerender(folder: str) -> dict:
    """Write ``folder``'s report.md, results.json, summary.csv and figures again from its results.json (no
    training). A run saved before the preset had a ``verdict`` section is judged by the preset's current one."""
    import json

    with open(os.path.join(folder, "results.json")) as f:
        res = json.load(f)
    res["config"] = with_verdict_rules("dense-long", res["config"])
    return _report(folder, res, res.get("wall_s"), res.get("device", "cpu"))


def _report(out: str, res: dict, wall, device: str) -> dict:
    cfg, rows, summary = res["config"], res["rows"], res["summary"]
    _add_gaps(summary, rows)
    claims, records = _claims(rows, summary, cfg)
    verdicts = decide(claims, records, cfg["verdict"]["alpha"])
    for e in summary:
        if "record" in e:
            r = records[e.pop("record")]
            e["outcome"] = r["outcome"].replace("b better", "SSM better").replace("a better", "MambaOut better")
    figures = _figures(summary, out)
    write_csv(summary, os.path.join(out, "summary.csv"))
    keep = ("config", "rows", "summary", "stages", "data", "steps")
    write_json(
        dict(
            {k: res[k] for k in keep},
            verdicts=verdicts,
            comparisons=records,
            wall_s=wall,
            device=device,
        ),
        os.path.join(out, "results.json"),
    )
    sections = _sections(summary, res["stages"], res["data"], res["steps"], cfg, wall, device)
    sections.insert(0, "## Verdict rules\n\n" + rules_text(cfg["verdict"]))
    sections.append(
        "## Comparisons (paired by seed)\n\n"
        + comparisons_table([records[k] for c in claims for k in c["comparisons"]])
        + "\n\n## Verdicts\n\n"
        + "\n".join(f"- **{v['claim']}**: {v['verdict']}. {v['evidence']}" for v in verdicts)
    )
    write_report(os.path.join(out, "report.md"), "Lab: dense tasks as L grows (dense-long)", sections)
    return dict(
        name="dense-long",
        title="Dense tasks as L grows (Fashion-MNIST scenes)",
        sections=sections,
        summary="",
        verdicts=verdicts,
        figures=figures,
        claims=claims,
        records=records,
        verdict_cfg=cfg["verdict"],
    )


def _sections(summary, stage_rows, data_cards, plans, cfg, wall, device) -> list[str]:
    seg = [e for e in summary if e["view"] == "segmentation"]
    det = [e for e in summary if e["view"] == "detection"]
    fmt = dict(digits=2)
    text = [
        "## Setup\n\n"
        f"Scenes: sides {cfg['sizes']}, variants {cfg['variants']}, {cfg['data']['train_scenes']} training / "
        f"{cfg['data']['val_scenes']} validation scenes each (data seed 0; training seeds {cfg['seeds']}). "
        f"Backbones (trunk widths matched to the SSM pair within 5%): "
        f"{', '.join(NAMES[k] for k in cfg['models'])}. Batch {cfg['batch_size']}, steps {plans}, "
        f"AdamW lr {cfg['optim']['lr']}, warm-up + cosine. Device {device}; wall "
        f"{'not recorded' if wall is None else f'{wall:.0f} s'}. Peak memory is "
        "measured on CUDA only (nan on CPU). `item_acc`: pixel accuracy on item pixels (context: non-marker "
        "items only, where a model that sees < d px around a pixel cannot beat 10%).",
        "## Context bound of each scene set\n\n"
        + "\n".join(
            f"- {k}: d = {v['bound']['distance_px']} px, local-only accuracy <= {v['bound']['max_accuracy']:.2f}"
            for k, v in data_cards.items()
            if v["bound"]
        ),
    ]
    if seg:
        text.append(
            "## Segmentation (UperNet)\n\n"
            + markdown_table(
                seg,
                ["size", "variant", "model", "params", "L16", "r16", "mIoU", "mIoU_std", "item_acc", "gap", "outcome"]
                + ["train_ips", "infer_ips", "peak_mb", "train_cost_ratio"],
                ["S", "variant", "backbone", "params", "L (s16)", "L/6D (s16)", "mIoU", "±", "item acc", "gap"]
                + ["outcome", "train img/s", "infer img/s", "peak MB", "train cost ×"],
                **fmt,
            )
        )
    if det:
        text.append(
            "## Detection (Mask R-CNN)\n\n"
            + markdown_table(
                det,
                ["size", "variant", "model", "params", "L16", "r16", "box_AP", "box_AP_std", "mask_AP", "gap"]
                + ["outcome", "train_ips", "infer_ips", "peak_mb", "train_cost_ratio"],
                ["S", "variant", "backbone", "params", "L (s16)", "L/6D (s16)", "box AP", "±", "mask AP", "gap"]
                + ["outcome", "train img/s", "infer img/s", "peak MB", "train cost ×"],
                **fmt,
            )
        )
    text.append(
        "## Per-stage L and L/6D\n\n"
        + markdown_table(
            [r for r in stage_rows if r["view"] == (cfg["views"][0])],
            ["size", "model", "stage", "height", "width", "tokens", "dim", "ratio"],
            ["S", "backbone", "stage", "H", "W", "L", "D", "L/6D"],
            digits=3,
        )
    )
    text.append("## Figures\n\n![gap](gap_vs_ratio.png)\n\n![cost](cost_vs_L.png)")
    return text

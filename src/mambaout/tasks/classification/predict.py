"""``mambaout classify``: a trained classifier's top-k for image files and folders (timm's inference.py).

    mambaout classify photo.jpg more_photos/ --run runs/fm --topk 3 --csv predictions.csv

Images are preprocessed exactly as the run's evaluation does (its ``eval_transform``: size, crop_pct,
interpolation, mean/std, channels). A file that cannot be decoded is skipped, named on stderr and counted.
"""

from __future__ import annotations

import csv
import io
import logging
import os

import torch

from ...data.fashion_mnist import CLASSES as FASHION_CLASSES
from ...data.imagefolder import IMG_EXTENSIONS, load_image
from ...engine.state import write_text_atomic
from ...errors import UsageError
from ...utils.output import print_json
from ...utils.paths import check_output_file
from ...utils.table import markdown_table
from . import data
from .evaluate import load_classifier

log = logging.getLogger("mambaout")


def image_paths(inputs: list[str]) -> list[str]:
    """Files as given, folders searched (recursively, sorted) for image files; a missing path is an error."""
    paths = []
    for p in inputs:
        if os.path.isdir(p):
            found = [
                os.path.join(folder, f)
                for folder, dirs, files in sorted(os.walk(p))
                for f in sorted(files)
                if f.lower().endswith(IMG_EXTENSIONS)
            ]
            if not found:
                raise UsageError(f"{p!r}: no image files in it ({', '.join(IMG_EXTENSIONS)})")
            paths += found
        elif os.path.isfile(p):
            paths.append(p)
        else:
            raise UsageError(f"{p!r}: no such file or folder")
    return paths


def class_names(cfg) -> list[str]:
    """Fashion-MNIST's names, ImageNet-1k's (timm's table) for 1000 classes, an image folder's class folders
    when the training split is still on disk, else 'class k'."""
    n, d = cfg.data.num_classes, cfg.data
    if d.dataset == "fashion_mnist":
        return list(FASHION_CLASSES)
    if d.dataset == "imagefolder" and d.root:
        train = os.path.join(d.root, d.train_split)
        if os.path.isdir(train):
            names = sorted(e.name for e in os.scandir(train) if e.is_dir())
            if len(names) == n:
                return names
    if n == 1000:
        from timm.data import ImageNetInfo

        info = ImageNetInfo()
        return [info.index_to_description(i).split(",")[0] for i in range(n)]
    return [f"class {k}" for k in range(n)]


@torch.no_grad()
def predict(cfg, model, paths: list[str], topk: int = 5, batch_size: int = 32, img_size: int | None = None):
    """(rows, skipped): a row per decoded image (path, then rank k's class, index and probability for every k
    up to ``topk``); ``skipped`` lists (path, why) for the files that could not be read."""
    transform = data.eval_transform(cfg, img_size)
    mode = "L" if cfg.model.in_chans == 1 else "RGB"
    names = class_names(cfg)
    k = min(topk, cfg.data.num_classes)
    device = next(model.parameters()).device
    rows, skipped, batch, kept = [], [], [], []

    def flush():
        probs = model(torch.stack(batch).to(device)).float().softmax(-1)
        values, indices = probs.topk(k, dim=-1)
        for path, v, i in zip(kept, values.tolist(), indices.tolist()):
            row = {"image": path}
            for rank, (p, c) in enumerate(zip(v, i), 1):
                row.update({f"top{rank}": names[c], f"top{rank}_index": c, f"top{rank}_prob": round(p, 6)})
            rows.append(row)
        batch.clear()
        kept.clear()

    for path in paths:
        try:
            x = transform(load_image(path, mode))
        except (OSError, ValueError, SyntaxError) as e:  # PIL raises all three for broken files
            skipped.append((path, str(e).splitlines()[0] if str(e) else type(e).__name__))
            log.warning("skipped %s: %s", path, skipped[-1][1])
            continue
        batch.append(x)
        kept.append(path)
        if len(batch) == batch_size:
            flush()
    if batch:
        flush()
    return rows, skipped


def run_predict(args) -> dict:
    if args.topk < 1:
        raise UsageError(f"classify: --topk must be >= 1, got {args.topk}")
    if args.batch_size is not None and args.batch_size < 1:
        raise UsageError(f"classify: --batch-size must be >= 1, got {args.batch_size}")
    if args.img_size is not None and args.img_size < 1:
        raise UsageError(f"classify: --img-size must be positive, got {args.img_size}")
    paths = image_paths(args.images)
    if args.csv:
        check_output_file(args.csv, "classify --csv")
    cfg, model, src = load_classifier(args)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    rows, skipped = predict(cfg, model.to(device), paths, args.topk, args.batch_size or 32, args.img_size)
    if args.csv:
        _write_csv(rows, args.csv)
    result = dict(model=cfg.model.name, weights=src, images=len(rows), skipped=[p for p, _ in skipped], rows=rows)
    if args.json:
        print_json(result)
    else:
        k = min(args.topk, cfg.data.num_classes)
        cols = ["image"] + [c for r in range(1, k + 1) for c in (f"top{r}", f"top{r}_prob")]
        heads = ["image"] + [h for r in range(1, k + 1) for h in (f"top-{r}", "p")]
        print(markdown_table(rows, cols, heads, digits=3))
        tail = f"; {len(skipped)} skipped (unreadable, named above)" if skipped else ""
        print(f"\n{cfg.model.name} ({src}): {len(rows)} images{tail}" + (f"; wrote {args.csv}" if args.csv else ""))
    return result


def _write_csv(rows: list[dict], path: str) -> None:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(rows[0]) if rows else ["image"])
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(path, text.getvalue())

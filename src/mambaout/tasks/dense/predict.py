"""Draw a trained detector's boxes and masks, or a segmentor's class map, on a user's image (PNG out)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw

from ...data.files import image_to_tensor, load_rgb
from ...errors import DatasetError, InputError


def palette(n: int) -> np.ndarray:
    """n distinct RGB colours (the PASCAL bit-interleaving palette, class 0 black)."""
    pal = np.zeros((max(n, 1), 3), dtype=np.uint8)
    for i in range(n):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal[i] = (r, g, b)
    return pal


def draw_detections(
    image: Image.Image, boxes, labels, scores, masks=None, class_names: Sequence[str] | None = None, alpha: float = 0.45
) -> Image.Image:
    img = np.asarray(image.convert("RGB"), dtype=np.float32).copy()
    pal = palette(256)
    pal[0] = (255, 255, 0)
    if masks is not None:
        for m, lab in zip(masks, labels):
            sel = m.astype(bool)
            img[sel] = (1 - alpha) * img[sel] + alpha * pal[int(lab) % 256]
    out = Image.fromarray(img.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(out)
    for b, lab, s in zip(boxes, labels, scores):
        color = tuple(int(v) for v in pal[int(lab) % 256])
        draw.rectangle([float(v) for v in b], outline=color, width=2)
        name = class_names[int(lab) - 1] if class_names and 0 < int(lab) <= len(class_names) else str(int(lab))
        draw.text((float(b[0]) + 2, float(b[1]) + 1), f"{name} {float(s):.2f}", fill=color)
    return out


def draw_segmentation(image: Image.Image, classes: np.ndarray, alpha: float = 0.5) -> Image.Image:
    pal = palette(256)
    color = pal[classes.clip(0, 255)]
    img = np.asarray(image.convert("RGB"), dtype=np.float32)
    return Image.fromarray(((1 - alpha) * img + alpha * color).clip(0, 255).astype(np.uint8))


@torch.no_grad()
def predict_image(
    checkpoint: str,
    image_path: str,
    output: str | None = None,
    score_threshold: float = 0.5,
    task: str | None = None,
    device: str = "cpu",
) -> dict:
    """Run the model of ``checkpoint`` on ``image_path``; write the drawing to ``output`` (PNG; a folder: a
    file named after the image in it; default: next to the image)."""
    from ...data.dense_transforms import MEAN, STD, SegTestResize
    from ...models.upernet import predict_logits
    from .task import load_trained

    try:
        pil = load_rgb(os.fspath(image_path))
    except DatasetError as e:
        raise InputError(str(e)) from None
    model, cfg = load_trained(checkpoint, device)
    heads = [t for t in cfg.tasks.names() if t != "classification"]
    task = task or heads[0]
    if task not in heads:
        raise InputError(f"{checkpoint!r} has no {task!r} head (it has: {', '.join(heads)})")
    net, sec = model.heads[task], getattr(cfg.tasks, task)
    names = sec.data.class_names
    x = image_to_tensor(pil).to(device)
    name = os.path.splitext(os.fspath(image_path))[0] + f"_{task}.png"
    if output and (os.path.isdir(output) or output.endswith(os.sep)):  # a folder: the file is named after the image
        output = os.path.join(output, os.path.basename(name))
    output = output or name
    if task == "detection":
        out = net([x])[0]
        keep = out["scores"] >= score_threshold
        boxes, labels, scores = out["boxes"][keep].cpu(), out["labels"][keep].cpu(), out["scores"][keep].cpu()
        masks = (out["masks"][keep][:, 0] > 0.5).cpu().numpy() if "masks" in out else None
        drawn = draw_detections(pil, boxes.tolist(), labels.tolist(), scores.tolist(), masks, names)
        result = dict(
            task=task,
            detections=[
                dict(
                    box=b,
                    label=int(lab),
                    score=float(s),
                    name=names[int(lab) - 1] if names and 0 < lab <= len(names) else None,
                )
                for b, lab, s in zip(boxes.tolist(), labels.tolist(), scores.tolist())
            ],
        )
    else:
        ev, d = sec.eval, sec.data
        xs = (x - torch.tensor(MEAN, device=device).view(3, 1, 1)) / torch.tensor(STD, device=device).view(3, 1, 1)
        xs, _ = SegTestResize(d.test_scale if d.test_scale is not None else d.scale)(xs, None)  # as the val set
        prob = predict_logits(net, xs[None], ev.mode, ev.crop, ev.stride, out_size=x.shape[-2:])
        classes = prob.argmax(1)[0].cpu().numpy()
        drawn = draw_segmentation(pil, classes)
        counts = np.bincount(classes.reshape(-1), minlength=1)
        result = dict(task=task, classes_present={int(c): int(n) for c, n in enumerate(counts) if n})
    folder = os.path.dirname(os.path.abspath(output))
    os.makedirs(folder, exist_ok=True)
    drawn.save(output, format="PNG")
    result["output"] = output
    return result

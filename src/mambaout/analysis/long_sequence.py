"""The paper's long-sequence test (Sec. 3.2, Eq. 6-7).

FLOPs of one Transformer block (MLP ratio 4) on X in R^{L x D}, 2 FLOPs per multiply-add, softmax/norms
ignored: linear part 24 D^2 L (QKV 6, output 2, MLP 16), quadratic part 4 D L^2 (QK^T and attention.V,
fully visible; causal attention costs half of it). Their ratio is r = L / (6D): the task is
"long-sequence" when L > tau = 6D, i.e. when attention's quadratic term outweighs the linear work.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

from ..errors import InputError

# (task, height, width) at the resolutions the paper uses.
PAPER_TASKS: tuple[tuple[str, int, int], ...] = (
    ("ImageNet classification", 224, 224),
    ("COCO detection", 800, 1280),
    ("ADE20K segmentation", 512, 2048),
)
PAPER_WIDTHS: tuple[tuple[str, int], ...] = (("ViT-S", 384), ("ViT-B", 768))


def threshold(dim: int) -> int:
    """tau = 6D: the token count where the quadratic FLOPs equal the linear FLOPs."""
    return 6 * dim


def transformer_block_flops(tokens: int, dim: int) -> dict:
    linear = 24 * dim * dim * tokens
    quadratic = 4 * dim * tokens * tokens
    return dict(linear=linear, quadratic=quadratic, total=linear + quadratic, ratio=tokens / (6 * dim))


def tokens_for(height: int, width: int, patch: int) -> int:
    if min(height, width, patch) <= 0:
        raise InputError(f"height, width and patch must be positive, got {height}x{width} patch {patch}")
    return (height // patch) * (width // patch)


def verdict(ratio: float) -> str:
    """'long' past the threshold; 'near' within 20% below it (the paper counts ADE20K vs ViT-B, r=0.89,
    as long-sequence); 'short' otherwise."""
    if ratio > 1:
        return "long"
    return "near" if ratio >= 0.8 else "short"


@dataclass
class LongSeqRow:
    task: str
    height: int
    width: int
    patch: int
    tokens: int
    model: str
    dim: int
    tau: int
    ratio: float
    quadratic_share: float
    verdict: str


def long_seq_table(
    tasks: Sequence[tuple[str, int, int]] = PAPER_TASKS, widths=PAPER_WIDTHS, patch: int = 16
) -> list[LongSeqRow]:
    rows = []
    for task, h, w in tasks:
        L = tokens_for(h, w, patch)
        for model, dim in widths:
            if dim <= 0:
                raise InputError(f"width must be positive, got {dim}")
            f = transformer_block_flops(L, dim)
            rows.append(
                LongSeqRow(
                    task,
                    h,
                    w,
                    patch,
                    L,
                    model,
                    dim,
                    threshold(dim),
                    f["ratio"],
                    f["quadratic"] / f["total"],
                    verdict(f["ratio"]),
                )
            )
    return rows


def rows_as_dicts(rows) -> list[dict]:
    return [asdict(r) for r in rows]

"""Scan orders: how a 2-D token map is read out as 1-D sequences for a selective scan.

Every direction is an index tensor into the raster-flattened map (position ``r * W + c``), computed
once per (directions, H, W) and cached. A multi-direction scan gathers K sequences at once,
``(B, C, H, W) -> (B, K, C, L_k)``, and the merge puts every output back at the position it came from
and sums over directions (VMamba's cross-merge). All mixers share these orders.

Direction names (append ``_flip`` to any of them to read the same path backwards):

============  =====================================================================================
``h``         raster / row-major (rows top to bottom, each left to right)
``v``         column-major (columns left to right, each top to bottom)
``w{K}``      local windows (LocalMamba): K x K windows in row-major order, row-major inside each
              window. Windows at the right/bottom border are partial when H or W is not a multiple of
              K (the "padding" slots are dropped, so the scan stays a permutation of the L tokens).
``zz_h``      zig-zag / snake over rows (PlainMamba): row 0 left->right, row 1 right->left, ...
``zz_v``      zig-zag over columns: column 0 top->bottom, column 1 bottom->top, ...
``a{S}_{k}``  atrous (EfficientVMamba, step S=2): sub-grid k of the S x S dilated grid,
              k = 0: (even, even) row-major, 1: (odd, even) column-major, 2: (even, odd) row-major,
              3: (odd, odd) column-major. The four sub-grids are disjoint and cover the map once
              (total length L). Odd H or W is zero-padded to even for the scan and cropped after.
============  =====================================================================================

Presets (``scan=`` options of the mixers): ``raster``, ``column``, ``bidirectional`` (h, h_flip; Vim),
``cross`` (h, v, h_flip, v_flip; VMamba SS2D), ``zigzag`` (zz_h, zz_h_flip, zz_v, zz_v_flip; PlainMamba:
rows from the top, rows from the bottom, columns from the left, columns from the right),
``atrous`` (a2_0..a2_3; EfficientVMamba), ``local`` (h, h_flip, w7, w7_flip), ``local2`` (w2, w2_flip,
w7, w7_flip). A preset name, a single direction name or a list of direction names is accepted.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Sequence
from functools import lru_cache

import torch
import torch.nn.functional as F

PRESETS = {
    "raster": ("h",),
    "column": ("v",),
    "reversed": ("h_flip",),
    "bidirectional": ("h", "h_flip"),
    "cross": ("h", "v", "h_flip", "v_flip"),
    "zigzag": ("zz_h", "zz_h_flip", "zz_v", "zz_v_flip"),
    "atrous": ("a2_0", "a2_1", "a2_2", "a2_3"),
    "local": ("h", "h_flip", "w7", "w7_flip"),
    "local2": ("w2", "w2_flip", "w7", "w7_flip"),
}

ScanSpec = str | Sequence[str]


def resolve(spec: ScanSpec) -> tuple[str, ...]:
    """A preset, a direction name or a list of names -> tuple of direction names (validated)."""
    if isinstance(spec, str):
        dirs = PRESETS.get(spec, (spec,))
    else:
        dirs = tuple(spec)
    if not dirs:
        raise ValueError("a scan needs at least one direction")
    for d in dirs:
        _parse(d)
    return tuple(dirs)


def _parse(name: str):
    flip = name.endswith("_flip")
    base = name[: -len("_flip")] if flip else name
    if base in ("h", "v", "zz_h", "zz_v"):
        return base, None, flip
    m = re.fullmatch(r"w(\d+)", base)
    if m and int(m.group(1)) >= 1:
        return "w", int(m.group(1)), flip
    m = re.fullmatch(r"a(\d+)_(\d+)", base)
    if m and int(m.group(1)) == 2 and int(m.group(2)) < 4:
        return "a", int(m.group(2)), flip
    raise ValueError(
        f"unknown scan direction {name!r}; known: h, v, w<K>, zz_h, zz_v, a2_<0-3> "
        f"(optionally with _flip) or a preset: {', '.join(PRESETS)}"
    )


def is_atrous(dirs: Sequence[str]) -> bool:
    return any(_parse(d)[0] == "a" for d in dirs)


def direction_indices(name: str, H: int, W: int) -> torch.Tensor:
    """Raster positions visited by direction ``name`` on an H x W map, in visiting order (CPU, int64)."""
    kind, arg, flip = _parse(name)
    grid = torch.arange(H * W, device="cpu").view(H, W)
    if kind == "h":
        idx = grid.flatten()
    elif kind == "v":
        idx = grid.t().flatten()
    elif kind == "zz_h":
        g = grid.clone()
        g[1::2] = g[1::2].flip(-1)
        idx = g.flatten()
    elif kind == "zz_v":
        g = grid.t().clone()
        g[1::2] = g[1::2].flip(-1)
        idx = g.flatten()
    elif kind == "w":
        k = arg
        hp, wp = -(-H // k) * k, -(-W // k) * k
        padded = torch.full((hp, wp), -1, dtype=torch.long)
        padded[:H, :W] = grid
        idx = padded.view(hp // k, k, wp // k, k).permute(0, 2, 1, 3).flatten()
        idx = idx[idx >= 0]
    else:  # atrous sub-grid (needs even H, W: the caller pads)
        if H % 2 or W % 2:
            raise ValueError(f"atrous scans need an even map, got {H}x{W}")
        r0, c0, col_major = {0: (0, 0, False), 1: (1, 0, True), 2: (0, 1, False), 3: (1, 1, True)}[arg]
        sub = grid[r0::2, c0::2]
        idx = (sub.t() if col_major else sub).flatten()
    return idx.flip(0) if flip else idx


@contextlib.contextmanager
def _untraced():
    """Run the body for real even while a graph is being recorded: its tensors are constants of the scan order.

    Graph capture must record a plan, not the ops that build it (boolean masks and ``torch.equal`` are
    data-dependent, and index arithmetic in every forward is waste): torch.compile and strict torch.export call the
    plan functions once (``assume_constant_result``); non-strict torch.export and torch.jit.trace run them here,
    outside their tracing state, so the cache holds real tensors that become constants of the graph.
    """
    from torch.utils._python_dispatch import _disable_current_modes

    jit_state = torch._C._get_tracing_state()
    torch._C._set_tracing_state(None)
    try:
        with _disable_current_modes():
            yield
    finally:
        torch._C._set_tracing_state(jit_state)


@torch.compiler.assume_constant_result
def _plan(dirs: tuple[str, ...], H: int, W: int, device: str):
    """(gather index (K*Lk,), inverse index, mode) for a direction set on an H x W map (see :func:`_untraced`)."""
    with _untraced():
        return _build_plan(dirs, H, W, device)


@lru_cache(maxsize=512)
def _build_plan(dirs: tuple[str, ...], H: int, W: int, device: str):
    parts = [direction_indices(d, H, W) for d in dirs]
    lengths = {p.numel() for p in parts}
    if len(lengths) != 1:
        raise ValueError(f"scan directions {dirs} have different lengths {sorted(lengths)} on {H}x{W}")
    gather = torch.cat(parts)
    L = H * W
    if all(p.numel() == L for p in parts):  # every direction is a full permutation: merge = sum
        inverse = torch.stack([torch.argsort(p) + k * L for k, p in enumerate(parts)]).flatten()
        mode = "sum"
    elif gather.numel() == L and torch.equal(torch.sort(gather).values, torch.arange(L)):
        inverse = torch.argsort(gather)  # disjoint sub-sequences covering the map once: place back
        mode = "place"
    else:
        raise ValueError(f"scan directions {dirs} neither all cover the {H}x{W} map nor partition it")
    return gather.to(device), inverse.to(device), mode


def cross_scan(x: torch.Tensor, dirs: Sequence[str]) -> tuple[torch.Tensor, tuple]:
    """(B, C, H, W) -> (B, K, C, Lk) sequences, plus the context :func:`cross_merge` needs."""
    dirs = tuple(dirs)
    B, C, H, W = x.shape
    ph, pw = (H % 2, W % 2) if is_atrous(dirs) else (0, 0)
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph))
    Hp, Wp = H + ph, W + pw
    gather, inverse, mode = _plan(dirs, Hp, Wp, str(x.device))
    K = len(dirs)
    xs = x.flatten(2).index_select(-1, gather).view(B, C, K, -1).transpose(1, 2)
    return xs, (dirs, H, W, Hp, Wp)


def cross_merge(ys: torch.Tensor, ctx: tuple) -> torch.Tensor:
    """(B, K, C, Lk) scan outputs -> (B, C, H, W): each output back at its position, summed over K."""
    dirs, H, W, Hp, Wp = ctx
    B, K, C, Lk = ys.shape
    _, inverse, mode = _plan(dirs, Hp, Wp, str(ys.device))
    flat = ys.transpose(1, 2).reshape(B, C, K * Lk).index_select(-1, inverse)
    if mode == "sum":
        flat = flat.view(B, C, K, Hp * Wp).sum(2)
    y = flat.view(B, C, Hp, Wp)
    return y[:, :, :H, :W] if (Hp, Wp) != (H, W) else y


# PlainMamba's direction-aware codes: the move that arrives at each step.
MOVE_START, MOVE_RIGHT, MOVE_LEFT, MOVE_UP, MOVE_DOWN = range(5)


@torch.compiler.assume_constant_result
def _codes(dirs: tuple[str, ...], H: int, W: int, device: str) -> tuple[torch.Tensor]:
    # a 1-tuple: dynamo names a bare tensor result after the function and refuses the name a second time
    with _untraced():
        return _build_codes(dirs, H, W, device)


@lru_cache(maxsize=512)
def _build_codes(dirs: tuple[str, ...], H: int, W: int, device: str) -> tuple[torch.Tensor]:
    rows = []
    for d in dirs:
        idx = direction_indices(d, H, W)
        r, c = idx // W, idx % W
        dr, dc = r[1:] - r[:-1], c[1:] - c[:-1]
        code = torch.zeros(idx.numel(), dtype=torch.long)  # start, and any jump that is not one step
        step = code[1:]
        step[(dr == 0) & (dc == 1)] = MOVE_RIGHT
        step[(dr == 0) & (dc == -1)] = MOVE_LEFT
        step[(dr == -1) & (dc == 0)] = MOVE_UP
        step[(dr == 1) & (dc == 0)] = MOVE_DOWN
        rows.append(code)
    return (torch.stack(rows).to(device),)


def move_codes(ctx: tuple, device) -> torch.Tensor:
    """(K, Lk) code of the move that reaches each step (0 start/jump, 1 right, 2 left, 3 up, 4 down),
    for the scan context returned by :func:`cross_scan` (PlainMamba's direction-aware B biases)."""
    dirs, H, W, Hp, Wp = ctx
    return _codes(tuple(dirs), Hp, Wp, str(device))[0]


def scan_positions(dirs: ScanSpec, H: int, W: int) -> list[torch.Tensor]:
    """Visiting order of each direction (for docs, plots and tests)."""
    return [direction_indices(d, H, W) for d in resolve(dirs)]

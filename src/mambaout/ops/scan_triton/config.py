"""Tile configurations of the Triton scan: :class:`TileConfig`, the defaults, and their fit to a call's shape.

Needs no triton: benchmarks and tests build and inspect configurations anywhere.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

FWD_LAYOUTS = ("tm", "tmw", "sn")
BWD_LAYOUTS = ("tmw", "sn")


def cdiv(a: int, b: int) -> int:
    # on the host, not triton.cdiv: that is a jit function, ~3 us a call, five calls per forward+backward
    return -(-a // b)


def pow2_le(n: int) -> int:
    return 1 << (max(1, n).bit_length() - 1)


def next_pow2(n: int) -> int:
    return 1 << max(0, (max(1, n) - 1).bit_length())


@dataclass(frozen=True)
class TileConfig:
    """How one scan kernel tiles its work.

    ``layout``: ``"tmw"`` (time-major, warp-local: tiles [block_t, NI, block_d, NL] with d_state = NI x NL),
    ``"sn"`` (small d_state <= 2: 2-D tiles [block_d, block_t] per state index) or ``"tm"`` (time-major
    [block_t, block_d, NP]; forward only).  ``block_d`` channels and ``warps`` warps a program, ``block_t`` time
    steps a tile (rounded down to powers of two at launch).
    tmw only: ``n_lanes`` lanes over n (None: 32 // block_d in the forward, 4 in the backward; at most the padded
    d_state), ``prefetch`` (the next tile's loads issued before this tile's arithmetic).
    Read by the backward only: ``fast_ew`` (tmw: softplus and the sigmoids as single MUFU approximations; compiled
    code only) and ``atomic_bc`` (dB/dC by fp32 atomic adds, or per-program partials summed afterwards; None:
    atomic while at most 256 channel blocks share a group; always partials under
    ``torch.use_deterministic_algorithms``).
    """

    layout: str
    block_d: int
    block_t: int
    warps: int
    n_lanes: int | None = None
    prefetch: bool = False
    fast_ew: bool = False
    atomic_bc: bool | None = None

    def __post_init__(self):
        if self.layout not in FWD_LAYOUTS:
            raise ValueError(f"TileConfig: unknown layout {self.layout!r}; choose one of {', '.join(FWD_LAYOUTS)}")
        for name in ("block_d", "block_t", "warps"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"TileConfig: {name} must be a positive int, got {v!r}")
        if self.n_lanes is not None and (not isinstance(self.n_lanes, int) or self.n_lanes < 1):
            raise ValueError(f"TileConfig: n_lanes must be a positive int or None, got {self.n_lanes!r}")
        if self.layout != "tmw" and (self.n_lanes is not None or self.prefetch or self.fast_ew):
            raise ValueError(f"TileConfig: n_lanes, prefetch and fast_ew belong to layout 'tmw', not {self.layout!r}")

    def replace(self, **changes) -> TileConfig:
        return dataclasses.replace(self, **changes)

    def to_tuple(self) -> tuple:
        """The benchmarks' sweep tuple: (block_d, block_t, warps, layout[, n_lanes][, flags]), flags "prefetch",
        "fast", "partials" (atomic_bc False), "atomic" (atomic_bc True)."""
        t = (self.block_d, self.block_t, self.warps, self.layout)
        t += (self.n_lanes,) if self.n_lanes is not None else ()
        t += ("prefetch",) if self.prefetch else ()
        t += ("fast",) if self.fast_ew else ()
        t += {None: (), False: ("partials",), True: ("atomic",)}[self.atomic_bc]
        return t

    @classmethod
    def from_tuple(cls, t) -> TileConfig:
        """Inverse of :meth:`to_tuple`; a tuple without a layout means "tm" (older sweep logs)."""
        t = tuple(t)
        if len(t) < 3:
            raise ValueError(f"TileConfig.from_tuple: need (block_d, block_t, warps[, layout, ...]), got {t!r}")
        kw = dict(layout=t[3] if len(t) > 3 else "tm", block_d=t[0], block_t=t[1], warps=t[2])
        flags = {
            "prefetch": ("prefetch", True),
            "fast": ("fast_ew", True),
            "partials": ("atomic_bc", False),
            "atomic": ("atomic_bc", True),
        }
        for x in t[4:]:
            if isinstance(x, int):
                kw["n_lanes"] = x
            elif x in flags:
                kw[flags[x][0]] = flags[x][1]
            else:
                raise ValueError(f"TileConfig.from_tuple: unknown flag {x!r}; known: {', '.join(flags)}")
        return cls(**kw)


def default_config(d_state: int, length: int, *, backward: bool = False, itemsize: int = 4) -> TileConfig:
    """The tile for a scan of ``d_state`` states over ``length`` steps whose u has ``itemsize``-byte elements.

    Chosen by H100 sweeps (docs/notes/scan_kernel.md has every measurement and the tiles that lost):

    * forward, 3 <= d_state <= 16: tmw with prefetch.  Loads are issued a tile ahead because the forward waits on
      them.  L >= 1024: 4 lanes over n, 16 steps, two warps a program, which share their B/C loads; shorter
      sequences: 2 lanes, 8 steps, one warp.  Both compile to 234-255 registers without spills; tiles with fewer
      registers were slower.
    * forward, d_state > 16: tm, block_d * NP = 128, every thread of 4 warps owning one (d, n) pair.
    * backward, d_state >= 3: tmw, one warp a program.  L >= 1024: 4 channels x 8 lanes over n, 8 steps, and
      softplus and the sigmoids by MUFU approximations (fewer registers; the forwards were slower with them);
      shorter: 8 channels x 4 lanes, 4 steps.  Prefetch for 16-bit inputs only: in fp32 it costs more registers
      than it saves time.
    * d_state <= 2: sn, one warp a program, lanes along time; forward 2 channels x 256 steps (d_state 1) or
      4 x 128 (2); backward 2 x 128, or 2 x 256 for 16-bit inputs at d_state 1 and L >= 1024 (a thread's 8
      steps are one 16-byte load; fp32 spills at 256, and short sequences waste the long tile).

    Under autograd the forward's saved states must fall on the backward's tile starts: see ``launch``.
    """
    NP = next_pow2(d_state)
    if backward:
        if NP <= 2:
            steps = 256 if NP == 1 and itemsize <= 2 and length >= 1024 else 128
            return TileConfig("sn", 2, _clamp_t(steps, length), 1)
        lanes, steps = (min(8, NP), 8) if length >= 1024 else (min(4, NP), 4)
        return TileConfig("tmw", 32 // lanes, steps, 1, n_lanes=lanes, prefetch=itemsize <= 2, fast_ew=length >= 1024)
    if NP <= 2:
        return TileConfig("sn", 2 * NP, _clamp_t(256 // NP, length), 1)
    if NP <= 16:
        lanes, steps, warps = (min(4, NP), 16, 2) if length >= 1024 else (min(2, NP), 8, 1)
        return TileConfig("tmw", 32 * warps // lanes, steps, warps, n_lanes=lanes, prefetch=True)
    return TileConfig("tm", max(1, 128 // NP), 16, 4)


def _clamp_t(steps: int, length: int) -> int:
    # a long tile on a short sequence only adds masked steps
    return min(steps, max(16, next_pow2(length)))


def fit_config(cfg: TileConfig, dim: int, groups: int) -> TileConfig:
    """``cfg`` made launchable for ``dim`` channels in ``groups`` B/C groups: power-of-two tiles, a channel block
    that never straddles a group (it divides dim / groups) and no wider than dim, and, for tmw, no warps that a
    narrowed channel block leaves idle."""
    bd = min(pow2_le(cfg.block_d), next_pow2(dim))
    if groups > 1:
        dpg = dim // groups
        while dpg % bd:
            bd //= 2
    bd = max(1, bd)
    # tmw holds block_t x NI (d, n) elements a thread, so its tiles are short; the others scan across lanes
    bt = max(2 if cfg.layout == "tmw" else 16, pow2_le(cfg.block_t))
    warps = cfg.warps
    if cfg.layout == "tmw" and cfg.n_lanes is not None:
        warps = max(1, min(warps, bd * cfg.n_lanes // 32))
    return cfg.replace(block_d=bd, block_t=bt, warps=warps)


def tmw_lanes(cfg: TileConfig, NP: int, backward: bool) -> int:
    """NL, the lanes a tmw tile spreads the (padded) d_state over."""
    if backward:
        return min(NP, pow2_le(cfg.n_lanes if cfg.n_lanes is not None else 4))
    return min(NP, max(1, cfg.n_lanes if cfg.n_lanes is not None else 32 // cfg.block_d))

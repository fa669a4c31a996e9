"""Fused Triton selective scan (S6) for CUDA: forward and backward kernels.

Modules: :mod:`.config` (:class:`TileConfig`, :func:`default_config`; no triton needed), :mod:`.tiles` (jit helpers
of every layout), one module per layout that a default picks (:mod:`.tmw`, :mod:`.sn`, :mod:`.tm`),
:mod:`.launch` (the kernel launches, an autograd Function for explicit tile configs and
:func:`selective_scan_triton`) and :mod:`.op` (the launches as the ``torch.ops.mambaout.selective_scan`` operator
and its backward, what default calls, ``torch.compile`` and ``torch.export`` see).  docs/notes/scan_kernel.md has the
reasoning, predictions and H100 measurements behind every choice, and the layouts that lost.

Design
------
* Layouts, chosen per d_state, L and dtype by :func:`default_config`:
  - "tmw" tiles [BLOCK_T, NI, BLOCK_D, NL] with N = NI x NL (3 <= N <= 16 both ways, the backward above): one warp
    holds the whole (d, n) block, so scans and sums over time stay in-thread, sums over n are mostly in-thread
    and sums over d stay in the warp.  Its loads can be issued a tile ahead (prefetch).
  - "sn" (N <= 2): 2-D tiles [BLOCK_D, BLOCK_T] per n, lanes along time with a vector of contiguous steps per
    thread (N = 1 has too few chains to parallelise otherwise); the adjoint scan runs forward over time flipped
    with ``tl.gather``.
  - "tm" tiles [BLOCK_T, BLOCK_D, NP] (forward, N > 16): each thread scans whole time columns of its (d, n) pairs.
* One program per (block of BLOCK_D channels, batch element).  It walks the sequence in tiles of BLOCK_T steps;
  the state tile h (fp32) lives in registers and is carried from tile to tile.  Inside a tile the recurrence
  ``h_t = a_t h_{t-1} + x_t`` is solved with ``tl.associative_scan`` over time with the combine (a1, b1),
  (a2, b2) -> (a1 a2, a2 b1 + b2).  Only products of decays exp(delta*A) <= 1 appear, so long sequences are
  stable.  The (B, D, L, N) state never touches HBM.
* N (d_state) is padded to a power of two NP (masked; padded rows have A = 0, B = C = 0 and stay zero).  L is
  arbitrary (masked tail: delta = 0, so a = 1 and x = 0 there).  Grouped B/C (B, G, N, L): a channel block never
  straddles a group (BLOCK_D divides D/G).
* D, z (SiLU gate), delta_bias and softplus are fused; the kernel reads u, delta, B, C, z once and writes y once.
* Training: the forward also stores the state at the start of each backward tile, (B, L/BLOCK_T, D, N) fp32 (a
  tmw forward with a longer tile stores the states inside it).  The backward walks the tiles in reverse,
  recomputes each tile's states from the stored one, and runs a reverse scan for the adjoint
  g_t = dLoss/dh_t: ``g_t = C_t dy_t + a_{t+1} g_{t+1}``.  a_t h_{t-1} is formed as h_t - x_t.
* dB and dC (sums over channels) are reduced over each program's channel block, then added with fp32 atomic adds
  into the (B, G, N, L) result while at most 256 channel blocks share a group (more contend in L2); otherwise,
  and under ``torch.use_deterministic_algorithms(True)``, each program writes its partials, (B, D/BLOCK_D, N, L),
  which torch sums (bitwise reproducible).  dA, dD and d(delta_bias) are accumulated in registers over time and
  added with ``tl.atomic_add`` once per program (their fp32 summation order is nondeterministic either way).
* ``last_state`` (fp32) is returned without gradient (marked non-differentiable), as in mamba_ssm's fused kernel.
  Use the PyTorch backend if a gradient through last_state is needed.
* Kernel names (``_scan_fwd_kernel_tmw`` ...) are what Nsight and the profiler logs show; filters such as
  ``--kernel-name regex:_scan_bwd`` rely on them.

Importing this package never fails: without triton or a GPU, :func:`available` returns False.
"""

from .config import BWD_LAYOUTS, FWD_LAYOUTS, TileConfig, default_config, fit_config
from .launch import HAVE_TRITON, available, last_kernel_info, selective_scan_triton
from .op import selective_scan_bwd, selective_scan_fwd  # registers torch.ops.mambaout.selective_scan{,_backward}

__all__ = [
    "BWD_LAYOUTS",
    "FWD_LAYOUTS",
    "HAVE_TRITON",
    "TileConfig",
    "available",
    "default_config",
    "fit_config",
    "last_kernel_info",
    "selective_scan_bwd",
    "selective_scan_fwd",
    "selective_scan_triton",
]

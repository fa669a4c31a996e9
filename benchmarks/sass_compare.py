"""Compile the Triton scan's default kernels from two versions of the code, offline, and compare their SASS.

For a refactor that must not change a single instruction.  No GPU needed: every default launch of each version
(forward for inference and under autograd, backward; fp32 and bf16; with and without D, z, delta_bias and softplus;
the tile branches of ``default_config``) is captured on CPU tensors at the point where the kernel would be launched,
with Triton's own argument specialisation (16-byte alignment, divisibility by 16, ints equal to 1), then compiled
for the target with ``triton.compile`` and disassembled (``cuobjdump -sass``, bundled with Triton's CUDA backend).
SASS text is compared after the kernel's name is masked; ``--ptx`` compares PTX without debug locations instead.

Run with the GPU machine's Triton, e.g. 3.6.0 installed outside the venv:

    pip install --target /tmp/triton36 triton==3.6.0
    git show 08e46ff:src/mambaout/ops/scan_triton.py > /tmp/scan_old.py   # the last single-file version
    PYTHONPATH=/tmp/triton36:src python benchmarks/sass_compare.py /tmp/scan_old.py src/mambaout/ops/scan_triton

    # a package version: mkdir /tmp/old && git archive REV src/mambaout/ops/scan_triton | tar -x -C /tmp/old
    # and pass /tmp/old/src/mambaout/ops/scan_triton

OLD and NEW: a dotted module name (``mambaout.ops.scan_triton``), a ``.py`` file, or a package directory; each
must provide ``_TritonScanFn`` (module or submodule) with the forward signature ``(u, delta, A, B, C, D, z,
delta_bias, softplus, return_last, fwd_cfg, bwd_cfg)``, relative imports resolving inside ``mambaout.ops``.
Exit status 0 when every kernel is identical, 1 otherwise.  ``--out DIR`` keeps each kernel's text for diffing.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import multiprocessing
import os
import re
import sys
from pathlib import Path

import torch

# (name, dim, L, d_state, groups): every branch of default_config (sn, tmw, tm; L below and from 1024; 16-bit
# sn backward tiles at d_state 1), L divisible by 16 or not, grouped B/C, and > 256 channel blocks a group
# (the backward's dB/dC partials instead of atomics)
SHAPES = [
    ("vmamba16", 192, 3136, 16, 1),
    ("vmamba16g4", 768, 3136, 16, 4),
    ("vim16", 768, 197, 16, 1),
    ("n4", 192, 3136, 4, 1),
    ("n5short", 96, 100, 5, 1),
    ("vmamba1", 192, 3136, 1, 1),
    ("vmamba2", 192, 3136, 2, 1),
    ("short1", 192, 197, 1, 1),
    ("v2s3_partials", 3072, 196, 1, 4),
    ("n64", 256, 197, 64, 1),
    ("n64long", 128, 1100, 64, 2),
]
QUICK = ("vmamba16", "vim16", "vmamba1", "n64")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
# (D, z, delta_bias, softplus, return_last_state)
EXTRAS = {"Dzb": (True, True, True, True, True), "Db": (True, False, True, True, False), "none": (False,) * 5}

LAUNCHES: list = []  # captured (fn, signature, constexprs, attrs, options)


def load(spec: str, tag: str):
    """Import OLD/NEW: a dotted name, a .py file or a package directory (as a sibling of mambaout.ops' modules)."""
    p = Path(spec)
    if not p.exists():
        return importlib.import_module(spec)
    name = f"mambaout.ops._sass_compare_{tag}"
    if p.is_dir():
        s = importlib.util.spec_from_file_location(name, p / "__init__.py", submodule_search_locations=[str(p)])
    else:
        s = importlib.util.spec_from_file_location(name, p)
    mod = importlib.util.module_from_spec(s)
    sys.modules[name] = mod
    s.loader.exec_module(mod)
    return mod


def scan_fn(mod):
    if hasattr(mod, "_TritonScanFn"):
        return mod._TritonScanFn
    for name, m in list(sys.modules.items()):
        if name.startswith(mod.__name__ + ".") and hasattr(m, "_TritonScanFn"):
            return m._TritonScanFn
    raise SystemExit(f"{mod.__name__}: no _TritonScanFn in the module or its submodules")


def install_capture(target):
    """Kernel launches record their specialised signature instead of running."""
    import triton
    from triton.compiler import make_backend
    from triton.runtime import jit

    backend = make_backend(target)

    def run(self, *args, grid, warmup, **kwargs):
        kwargs["debug"] = kwargs.get("debug", self.debug) or triton.knobs.runtime.debug
        kwargs["instrumentation_mode"] = triton.knobs.compilation.instrumentation_mode
        binder = jit.create_function_from_signature(self.signature, self.params, backend)
        bound, specialization, options = binder(*args, **kwargs)
        options, signature, constexprs, attrs = self._pack_args(backend, kwargs, bound, specialization, options)
        LAUNCHES.append((self, signature, constexprs, attrs, options))

    jit.JITFunction.run = run


def drive(fn, dim, L, n, G, dtype, extras, train):
    """One call (and its backward when ``train``) with default tiles; returns the indices of its launches."""
    has_d, has_z, has_b, sp, last = extras
    g = torch.Generator().manual_seed(0)

    def t(*shape, dt=dtype):
        return torch.randn(*shape, generator=g).to(dt).requires_grad_(train)

    args = (t(1, dim, L), t(1, dim, L), t(dim, n, dt=torch.float32), t(1, G, n, L), t(1, G, n, L),
            t(dim, dt=torch.float32) if has_d else None, t(1, dim, L) if has_z else None,
            t(dim, dt=torch.float32) if has_b else None)  # fmt: skip
    start = len(LAUNCHES)
    with torch.set_grad_enabled(train):
        res = fn.apply(*args, sp, last, None, None)
        out = res[0] if last else res
        if train:
            out.backward(torch.ones_like(out))
    return list(range(start, len(LAUNCHES)))


def describe(launch):
    fn, signature, constexprs, attrs, options = launch
    names = list(signature)
    ce = {names[k[0]]: v for k, v in constexprs.items()}
    return fn.__name__, ce, options.num_warps


def key(launch):
    fn, signature, constexprs, attrs, options = launch
    return (id(fn), repr(signature), repr(sorted(constexprs.items())), repr(sorted(attrs.items())), repr(options))


def compile_one(i):
    import triton
    from triton.compiler import ASTSource

    fn, signature, constexprs, attrs, options = LAUNCHES[i]
    k = triton.compile(ASTSource(fn, signature, constexprs, attrs), target=TARGET, options=options.__dict__)
    if PTX:  # without debug locations and file names, which move with every edit
        text = "\n".join(x for x in k.asm["ptx"].splitlines() if not re.match(r"\s*\.(loc|file)\b", x))
        text = text.split("\t.section\t.debug", 1)[0]
    else:
        text = k.asm["sass"]
    return re.sub(rf"\b{re.escape(fn.__name__)}\b", "KERNEL", text)


TARGET = None
PTX = False


def main(argv=None):
    global TARGET, PTX
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("old", help="module name, .py file or package directory")
    ap.add_argument("new", help="likewise")
    ap.add_argument("--arch", type=int, default=90, help="CUDA compute capability (default 90: H100)")
    ap.add_argument("--ptx", action="store_true", help="compare PTX (no debug locations) instead of SASS")
    ap.add_argument("--shapes", help=f"comma-separated names from: {', '.join(s[0] for s in SHAPES)} (default all)")
    ap.add_argument("--quick", action="store_true", help=f"--shapes {','.join(QUICK)}")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="parallel compiles")
    ap.add_argument("--out", help="write every compiled kernel's text here (old/, new/)")
    a = ap.parse_args(argv)
    if os.environ.get("TRITON_INTERPRET", "0") == "1":
        raise SystemExit("unset TRITON_INTERPRET: the interpreter's launches take other code paths")
    import triton
    from triton.backends.compiler import GPUTarget

    print(f"triton {triton.__version__} ({os.path.dirname(triton.__file__)}), target sm_{a.arch}, "
          f"{'PTX' if a.ptx else 'SASS'}")  # fmt: skip
    TARGET, PTX = GPUTarget("cuda", a.arch, 32), a.ptx
    install_capture(TARGET)
    fns = [scan_fn(load(a.old, "old")), scan_fn(load(a.new, "new"))]
    cases = []  # (label, [old launches], [new launches])
    names = a.shapes.split(",") if a.shapes else QUICK if a.quick else [s[0] for s in SHAPES]
    for name, dim, L, n, G in SHAPES:
        if name not in names:
            continue
        for dname, dtype in DTYPES.items():
            for ename, extras in EXTRAS.items():
                for train in (False, True):
                    label = f"{name} (D={dim}, L={L}, N={n}, G={G}) {dname} {ename} {'train' if train else 'infer'}"
                    cases.append((label, *[drive(f, dim, L, n, G, dtype, extras, train) for f in fns]))
    unique = {}
    for _, old, new in cases:
        for i in old + new:
            unique.setdefault(key(LAUNCHES[i]), i)
    print(
        f"{len(cases)} calls, {sum(len(c[1]) for c in cases)} launches each, {len(unique)} distinct kernels to compile"
    )
    with multiprocessing.get_context("fork").Pool(max(1, a.jobs)) as pool:
        texts = dict(zip(unique, pool.map(compile_one, list(unique.values()))))
    rows, same_all, seen = [], True, {}
    for label, old, new in cases:
        if len(old) != len(new):
            rows.append((label, "-", f"DIFFERENT launches: {len(old)} against {len(new)}"))
            same_all = False
            continue
        for io, inew in zip(old, new):
            ko, kn = key(LAUNCHES[io]), key(LAUNCHES[inew])
            do, dn = describe(LAUNCHES[io]), describe(LAUNCHES[inew])
            if do != dn:
                verdict = f"DIFFERENT launch: {do} against {dn}"
            elif texts[ko] == texts[kn]:
                verdict = f"identical ({texts[ko].count(chr(10))} lines)"
            else:
                verdict = "DIFFERENT code"
            same_all &= verdict.startswith("identical")
            rows.append((label, do[0], verdict))
            seen.setdefault((do[0], verdict.split(" ")[0]), 0)
            seen[(do[0], verdict.split(" ")[0])] += 1
            if a.out:
                for side, kk in (("old", ko), ("new", kn)):
                    d = Path(a.out) / side
                    d.mkdir(parents=True, exist_ok=True)
                    tag = re.sub(r"[^\w.=-]+", "_", f"{label} {do[0]}")
                    (d / f"{tag}.{'ptx' if a.ptx else 'sass'}").write_text(texts[kk])
    for label, kname, verdict in rows:
        print(f"{label:<62} {kname:<22} {verdict}")
    print("\nper kernel: " + ", ".join(f"{k} {v}: {n}" for (k, v), n in sorted(seen.items())))
    print("ALL IDENTICAL" if same_all else "SOME KERNELS DIFFER")
    return 0 if same_all else 1


if __name__ == "__main__":
    sys.exit(main())

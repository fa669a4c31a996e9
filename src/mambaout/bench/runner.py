"""``benchmark(...)``: images/s, batch-1 latency, peak memory and compile time of zoo models (and timm's).

Every model is measured the same way in one process (:mod:`.timing`): the step is built, compiled and/or
captured in a CUDA graph as asked, warmed up, then timed over ``repeats`` calls; throughput is
``batch / median step time``; latency is the median and 95th percentile of ``4 x repeats`` batch-1
inference calls (at batch 1, the CPU default, the timed calls themselves); peak memory is one batch step's allocation peak; compile time is the wall time of the
first warm-up call (compilation happens there). ``against_timm`` adds timm's model of the same name and
ConvNeXt-T / Swin-T as outside references, built with ``pretrained=False`` (nothing is downloaded).
"""

from __future__ import annotations

import contextlib
import logging

import torch

from ..errors import InputError, MambaoutError, UsageError, first_line
from ..registry import create_model, model_info
from .table import BenchTable
from .timing import AMP_DTYPES, Timing, make_step, peak_memory, time_calls

log = logging.getLogger("mambaout.bench")

# timm models measured as outside references, with the MambaOut paper's ImageNet-1K row for each
# (the same figures as the lab's paper_rows: ConvNeXt-T 82.1, Swin-T 81.3).
REFERENCES = {"convnext_tiny": ("ConvNeXt-T", 82.1), "swin_tiny_patch4_window7_224": ("Swin-T", 81.3)}
COMPILE_MODES = ("none", "default", "max-autotune")
LATENCY_FACTOR = 4  # batch-1 calls per throughput repeat (they are cheap; p95 needs samples)


def default_batch(device: torch.device, mode: str) -> int:
    if device.type == "cuda":
        return 256 if mode == "infer" else 128
    return 1 if mode == "infer" else 2  # a CPU serves one image at a time; keeps the default run < 1 min


def resolve_device(name: str) -> torch.device:
    if name not in ("cpu", "cuda") and not str(name).startswith("cuda:"):
        raise UsageError(f"--device must be cpu or cuda, got {name!r}")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"--device {name}: CUDA is not available here")
    return torch.device(name)


def _first_line(e: BaseException) -> str:
    return first_line(e) if isinstance(e, MambaoutError) else f"{type(e).__name__}: {first_line(e)}"


def _timm_has(name: str) -> bool:
    import timm  # lazily: `import mambaout` should not pay for timm's registry

    return timm.is_model(name)


def _build_timm(name: str, img_size):
    import timm

    kwargs = {"img_size": img_size} if name.startswith(("swin", "vit", "deit")) else {}
    return timm.create_model(name, pretrained=False, **kwargs)


class _Case:
    """One model's measurement: build, prepare (channels-last, compile, graph), time, memory."""

    def __init__(self, model, device, img_size, batch, amp, channels_last, compile, cuda_graphs, mode):
        self.model = model.to(device)
        self.device, self.img_size, self.batch = device, img_size, batch
        self.amp, self.channels_last, self.compile, self.cuda_graphs, self.mode = (
            amp,
            channels_last,
            compile,
            cuda_graphs,
            mode,
        )
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.run_model = self.model
        if compile != "none":
            self.run_model = torch.compile(self.model, mode=None if compile == "default" else compile)

    def inputs(self, batch):
        g = torch.Generator().manual_seed(0)
        x = torch.randn(batch, 3, *self.img_size, generator=g).to(self.device)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        y = torch.randint(0, 1000, (batch,), generator=g).to(self.device)
        return x, y

    def step(self, batch, mode):
        x, y = self.inputs(batch)
        return make_step(self.run_model, x, mode, target=y, amp=self.amp, static_grads=self.cuda_graphs)

    def prepare(self, step, warmup):
        """(warm-up Timing, the function to time): with CUDA graphs, warm up on a side stream and capture."""
        if not self.cuda_graphs:
            warm = time_calls(step, self.device, warmup, 1)  # its one timed call is one more warm-up
            warm.warmup_ms += warm.times_ms
            return warm, step
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            warm = time_calls(step, self.device, max(warmup, 1), 1)  # timed call = one more warm-up
        torch.cuda.current_stream(self.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            step()
        warm.warmup_ms += warm.times_ms
        return warm, graph.replay

    def timed(self, step, warmup, repeats):
        warm, fn = self.prepare(step, warmup)
        t = time_calls(fn, self.device, 0, repeats)
        t.warmup_ms = warm.warmup_ms
        return t, fn


def interleaved(fns, device, repeats: int) -> list[Timing]:
    """One call of each function per round, the order reversed every round (A B, B A, ...), so that a drift of
    the machine (clock, caches, other load) falls on every function alike: a ratio of two models measured one
    after the other on a CPU was off by up to 15% in the second's favour."""
    out = [Timing() for _ in fns]
    for r in range(repeats):
        for i in range(len(fns)) if r % 2 == 0 else reversed(range(len(fns))):
            out[i].times_ms += time_calls(fns[i], device, 0, 1).times_ms
    return out


def _measure(case: _Case, warmup: int, repeats: int, latency: bool, timed=None) -> dict:
    """``timed``: (Timing, step) taken elsewhere (interleaved with another model's); else timed here."""
    if timed is None:
        step = case.step(case.batch, case.mode)
        t, _ = case.timed(step, warmup, repeats)
    else:
        t, step = timed
    row = dict(
        step_ms=t.median_ms,
        images_per_s=case.batch / (t.median_ms / 1e3),
        compile_s=t.warmup_ms[0] / 1e3 if case.compile != "none" and t.warmup_ms else None,
        peak_mem_mib=peak_memory(step, case.device) / 2**20,
    )
    if latency and case.mode == "infer" and case.batch == 1:  # the timed calls are batch-1 calls already
        row.update(latency_p50_ms=t.median_ms, latency_p95_ms=t.p95_ms)
    elif latency and case.mode == "infer":
        lt, _ = case.timed(case.step(1, "infer"), warmup, LATENCY_FACTOR * repeats)
        row.update(latency_p50_ms=lt.median_ms, latency_p95_ms=lt.p95_ms)
    return row


def _check_input(model, name: str, img_size, device) -> None:
    """One batch-1 forward on the real model: an image size it cannot take is a one-line error."""
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, *img_size, device=device))
    except (RuntimeError, ValueError, AssertionError, MambaoutError) as e:
        raise InputError(f"{name} cannot take a {img_size[0]}x{img_size[1]} input: {_first_line(e)}") from None


def benchmark(
    models,
    device: str = "cpu",
    batch_size: int | None = None,
    img_size=(224, 224),
    amp: str = "none",
    channels_last: bool = False,
    compile: str = "none",
    cuda_graphs: bool = False,
    mode: str = "infer",
    against_timm: bool = False,
    repeats: int | None = None,
    warmup: int | None = None,
    latency: bool = True,
    threads: int | None = None,
) -> BenchTable:
    """Measure each model (a registry name) in one process with the same settings; see the module doc.
    Returns a :class:`BenchTable` (rows of dicts; ``to_markdown``/``to_csv``/``to_json``/``plot``)."""
    models = [models] if isinstance(models, str) else list(models)
    if not models:
        raise UsageError("benchmark needs at least one model")
    dev = resolve_device(device)
    if mode not in ("infer", "train"):
        raise UsageError(f"--mode must be infer or train, got {mode!r}")
    if amp not in AMP_DTYPES:
        raise UsageError(f"--amp must be one of {', '.join(AMP_DTYPES)}, got {amp!r}")
    if compile not in COMPILE_MODES:
        raise UsageError(f"--compile must be one of {', '.join(COMPILE_MODES)}, got {compile!r}")
    if cuda_graphs and dev.type != "cuda":
        raise UsageError("--cuda-graphs needs --device cuda")
    if cuda_graphs and amp == "fp16" and mode == "train":
        raise UsageError("--cuda-graphs cannot capture fp16 training (the GradScaler syncs); use --amp bf16")
    if len(img_size) != 2 or min(img_size) < 1:
        raise UsageError(f"--img-size takes positive H W, got {img_size}")
    img_size = tuple(int(v) for v in img_size)
    batch = batch_size if batch_size is not None else default_batch(dev, mode)
    cpu = dev.type == "cpu"
    repeats = repeats if repeats is not None else (8 if cpu else 30)
    warmup = warmup if warmup is not None else (1 if cpu else 10)
    if batch < 1 or repeats < 1 or warmup < 0:
        raise UsageError(f"need --batch-size >= 1, --repeats >= 1, --warmup >= 0 (got {batch}, {repeats}, {warmup})")
    if compile != "none":
        warmup = max(warmup, 1)  # a compiled model compiles at its first call: a warm-up call, never a timed one
    for name in models:
        model_info(name)  # unknown names fail before anything is measured
    if threads is not None and threads < 1:
        raise UsageError(f"--threads must be >= 1, got {threads}")
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick its fastest kernels

    settings = dict(
        device=str(dev), batch=batch, img=f"{img_size[0]}x{img_size[1]}", mode=mode, amp=amp, compile=compile
    )
    settings.update(channels_last=channels_last, cuda_graphs=cuda_graphs, repeats=repeats, warmup=warmup)
    settings["threads"] = threads or torch.get_num_threads()
    table = BenchTable([], settings=settings)
    previous_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)  # CPU intra-op threads while measuring; restored below

    def build(name, source, build_model, reference=False):
        """(_Case, params in M), or None for a reference model that cannot take the size (noted)."""
        torch.manual_seed(0)
        model = build_model()
        try:
            _check_input(model.to(dev), name, img_size, dev)
        except InputError as e:
            if not reference:
                raise
            table.notes.append(f"{name} (timm) skipped: {e}")
            return None
        params = sum(p.numel() for p in model.parameters()) / 1e6
        log.info("benchmark %s (%s) ...", name, source)
        return _Case(model, dev, img_size, batch, amp, channels_last, compile, cuda_graphs, mode), params

    @contextlib.contextmanager
    def failures(name, source):
        try:
            yield
        except MambaoutError:
            raise
        except Exception as e:  # a compiler or capture failure: one line naming the model and the option
            if compile == "none" and not cuda_graphs:
                raise
            what = f"--compile {compile}" if compile != "none" else "--cuda-graphs"
            raise UsageError(f"{what} failed for {name} ({source}): {_first_line(e)}") from None

    def measure(name, source, built, top1, timed=None):
        case, params = built
        with failures(name, source):
            measured = _measure(case, warmup, repeats, latency, timed)
        if dev.type == "cuda":
            torch.cuda.empty_cache()
        row = dict(model=name, source=source, params_m=params, paper_top1=top1, **measured)
        table.rows.append(row)
        log.info("%s (%s): %.1f images/s, step %.2f ms", name, source, row["images_per_s"], row["step_ms"])
        return row

    def run(name, source, build_model, top1, reference=False):
        built = build(name, source, build_model, reference)
        return measure(name, source, built, top1) if built else None

    def run_pair(name, top1):
        """Ours and timm's model of the same name, their timed calls interleaved (see ``interleaved``)."""
        ours = build(name, "mambaout", lambda: create_model(name))
        theirs = build(name, "timm", lambda: _build_timm(name, img_size), reference=True)
        if theirs is None:
            return measure(name, "mambaout", ours, top1), None
        steps, fns, warms = [], [], []
        for (case, _), source in ((ours, "mambaout"), (theirs, "timm")):
            with failures(name, source):
                steps.append(case.step(case.batch, case.mode))
                warm, fn = case.prepare(steps[-1], warmup)
            fns.append(fn)
            warms.append(warm)
        timings = interleaved(fns, dev, repeats)
        for t, warm in zip(timings, warms):
            t.warmup_ms = warm.warmup_ms
        return tuple(
            measure(name, source, built, top1, (t, step))
            for built, source, t, step in zip((ours, theirs), ("mambaout", "timm"), timings, steps)
        )

    try:
        for name in models:
            top1 = model_info(name).paper.get("top1")
            if against_timm and _timm_has(name):
                ours, theirs = run_pair(name, top1)
                if theirs:
                    ours["vs_timm"] = ours["images_per_s"] / theirs["images_per_s"]
                continue
            run(name, "mambaout", lambda n=name: create_model(n), top1)
            if against_timm:
                table.notes.append(f"timm has no model named {name}: no ratio for it")
        if against_timm:
            for name, (label, top1) in REFERENCES.items():
                run(name, f"timm ({label})", lambda n=name: _build_timm(n, img_size), top1, True)
    finally:
        torch.set_num_threads(previous_threads)
    return table

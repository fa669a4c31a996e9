"""The Gradio page of `mambaout serve`: one input (an upload or a bundled Fashion-MNIST test image) and three
views (Classify, Look inside, Long or short?).

Safety: uploads arrive as bytes (``gr.File(type="binary")``) and are decoded by ``images.decode_upload``;
model choices are looked up in the bank's list, never opened as paths; every handler turns an error into
one line in the page (a :class:`MambaoutError`'s message, or "internal error" with the traceback in the
server's log only); the queue runs ``concurrency`` requests at once and holds at most ``queue_size``.
Nothing reaches the internet: no analytics, no share link, system fonts instead of Google's.
"""

from __future__ import annotations

import functools
import hashlib
import io
import logging
import os
import shutil
import tempfile
import weakref
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image

from ..errors import InputError, MambaoutError
from ..registry import list_models
from ..utils.table import markdown_table
from . import long_short, render
from .checkpoints import UNTRAINED, ModelBank, discover
from .classify import classify
from .images import MAX_BYTES, MAX_PIXELS, decode_upload
from .look_inside import look_inside

log = logging.getLogger("mambaout")
NONE = "(none)"


@dataclass
class Options:
    checkpoints: list[str] = field(default_factory=list)  # given on the command line
    discover_root: str | None = "."  # where runs/*/best.pt and model.safetensors are looked for (None: nowhere)
    untrained: tuple[str, ...] = UNTRAINED
    img_size: int = 64  # untrained models' input side
    samples: int = 8  # Fashion-MNIST test images offered (0: none)
    data_root: str | None = None  # Fashion-MNIST folder (default: Debian's)
    max_bytes: int = MAX_BYTES
    max_pixels: int = MAX_PIXELS
    concurrency: int = 2
    queue_size: int = 32
    zoo_pattern: str | None = None  # the zoo table's models (a wildcard; None: all)


def load_samples(n: int, data_root: str | None) -> dict[str, Image.Image]:
    """'index: true class' -> the image, spread over Fashion-MNIST's test split; {} when it is not there."""
    if n <= 0:
        return {}
    from ..data import FashionMNIST
    from ..data.fashion_mnist import CLASSES

    try:
        ds = FashionMNIST(data_root, "test")
    except (MambaoutError, OSError) as e:
        log.info("no bundled samples: %s", e)
        return {}
    picks = sorted({round(i * (len(ds) - 1) / max(n - 1, 1)) for i in range(n)})
    out = {}
    for i in picks:
        image, label = ds[i]
        out[f"test image {i}: {CLASSES[int(label)]}"] = image
    return out


def _refusal(e: Exception) -> str:
    if isinstance(e, MambaoutError):
        return f"**Refused:** {e}"
    log.exception("serve: a request failed")  # the traceback stays in the server's log
    return "**Internal error** (logged on the server); the demo keeps serving."


def guarded(n_outputs: int):
    """A handler that returns its outputs and a status line, or on any error empty outputs and the reason."""

    def wrap(fn):
        @functools.wraps(fn)
        def run(*args):
            try:
                return (*fn(*args), "")
            except Exception as e:  # noqa: BLE001 - every error becomes one line in the page
                return (*([None] * n_outputs), _refusal(e))

        return run

    return wrap


class Demo:
    """The state behind the page: the models, the samples and the limits."""

    def __init__(self, options: Options):
        self.o = options
        found = discover(options.discover_root) if options.discover_root else []
        self.bank = ModelBank([*options.checkpoints, *found], options.untrained, options.img_size)
        self.samples = load_samples(options.samples, options.data_root)
        self.out_dir = tempfile.mkdtemp(prefix="mambaout-serve-")
        weakref.finalize(self, shutil.rmtree, self.out_dir, True)

    def png(self, image) -> str:
        """An output image as a PNG file named by its content, written atomically. Gradio copies a returned
        file into its cache atomically, whereas an array it would encode and write in place: two requests
        with the same picture would then rewrite the file one of them is serving (seen as truncated
        responses under 20 concurrent requests)."""
        pil = Image.fromarray(image) if isinstance(image, np.ndarray) else image
        buf = io.BytesIO()
        pil.save(buf, "PNG")
        data = buf.getvalue()
        path = os.path.join(self.out_dir, hashlib.sha256(data).hexdigest()[:40] + ".png")
        if not os.path.exists(path):
            fd, tmp = tempfile.mkstemp(dir=self.out_dir, suffix=".part")
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        return path

    def image(self, data, sample) -> tuple[Image.Image, list[str]]:
        """The upload (bytes), else the chosen sample; never a path from the client."""
        if data:
            decoded = decode_upload(data, "RGB", self.o.max_bytes, self.o.max_pixels)
            return decoded.image, [f"{decoded.format}, {decoded.image.width}x{decoded.image.height}", *decoded.notes]
        if sample and sample != NONE:
            if sample not in self.samples:
                raise InputError(f"unknown sample {sample!r}")
            return self.samples[sample], ["Fashion-MNIST test image, 28x28"]
        raise InputError("upload an image or pick a sample first")

    def preview(self, data, sample):
        img, notes = self.image(data, sample)
        return self.png(img.convert("RGB")), "; ".join(notes)

    def classify(self, data, sample, model_a, model_b, method):
        img, _ = self.image(data, sample)
        out = []
        for label in (model_a, model_b):
            if not label or label == NONE:
                out += [None, "", None]
                continue
            p = classify(self.bank.get(label), img, method)
            kind = "trained" if p.trained else "untrained: random weights"
            info = (
                f"**{p.model}** ({kind}), {p.img_size}x{p.img_size} input: forward pass "
                f"**{p.latency_ms:.1f} ms** (median of 3 on the CPU, torch threads: {torch.get_num_threads()}). "
                f"{method} of stage {p.cam_stage} ({p.cam_side}x{p.cam_side} cells)."
            )
            out += [p.top, info, self.png(p.overlay)]
        return out

    def look(self, data, sample, left, right, stage, qy, qx):
        img, _ = self.image(data, sample)
        out = []
        for label in (left, right):
            if not label or label == NONE:
                out += [None, None, ""]
                continue
            r = look_inside(self.bank.get(label), img, (float(qy), float(qx)), int(stage))
            sides = ", ".join(f"{float(t):.0%}: {s:.2f}" for t, s in r.erf_sides.items() if s is not None)
            what = {"ssm": "the SSM's hidden attention", "conv": "the conv kernel's footprint"}.get(r.kind, r.kind)
            info = (
                f"**{r.model}**, stage {r.stage}. ERF square side / image side ({sides or 'all zero'}). "
                f"Query pixel {r.query}: {what} (last block of the stage)."
            )
            out += [self.png(r.erf), self.png(r.mixing), info]
        return out

    def calculate(self, height, width, patch, dim, stages, model):
        rows = long_short.calculator(height, width, patch, dim, 4 if str(stages).startswith("4") else 1)
        table = markdown_table(rows, long_short.COLUMNS, long_short.HEADERS, digits=3)
        last = rows[-1]
        head = (
            f"Stage 1: **L = {rows[0]['tokens']:,}** tokens of width {rows[0]['dim']}: r = L/6D = "
            f"{rows[0]['ratio']:.3f}, **{rows[0]['verdict']}**"
            + (f"; last stage r = {last['ratio']:.3f}, **{last['verdict']}**" if len(rows) > 1 else "")
        )
        zoo_md = ""
        if model and model != NONE:
            if model not in list_models():
                raise InputError(f"unknown model {model!r}")
            rows = long_short.model_stages(model, height, width)
            zoo_md = f"**{model}** at {int(height)}x{int(width)}:\n\n" + markdown_table(
                rows, long_short.COLUMNS, long_short.HEADERS, digits=3
            )
        return head + "\n\n" + table, zoo_md

    def zoo(self):
        rows = long_short.zoo(self.o.zoo_pattern)
        return (markdown_table(rows, long_short.ZOO_COLUMNS, long_short.ZOO_HEADERS, digits=3),)


def _intro(demo: Demo) -> str:
    ckpts = demo.bank.checkpoint_labels
    lines = [
        "# MambaOut: do we really need Mamba for vision?",
        "A Mamba block is a Gated CNN block plus an SSM; MambaOut drops the SSM. Put the same image through "
        "MambaOut and its SSM pair, see where each looks, and check when a task is *long* in the paper's sense.",
    ]
    if ckpts:
        lines.append(f"Checkpoints: {len(ckpts)} ({', '.join(c.removeprefix('checkpoint: ') for c in ckpts)}).")
    else:
        lines.append(
            "No trained checkpoint found (none given with `--checkpoint`, no `runs/*/best.pt` or "
            "`model.safetensors` here): `make demo` trains MambaOut-Femto and its SSM pair on Fashion-MNIST. "
            "Meanwhile every view works with untrained models (random weights: their predictions mean nothing, "
            "their maps show what each mixer can reach)."
        )
    return "\n\n".join(lines)


def build(options: Options | None = None):
    """The gr.Blocks of the demo (not launched)."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import gradio as gr

    demo = Demo(options or Options())
    labels = demo.bank.labels
    ckpts = demo.bank.checkpoint_labels
    first, second = (ckpts + [x for x in labels if x not in ckpts] + [NONE])[:2]  # checkpoints first
    models = list_models()

    # uploads and outputs in gradio's cache: files older than 2 hours go, checked every hour
    with gr.Blocks(title="MambaOut demo", analytics_enabled=False, delete_cache=(3600, 7200)) as page:
        gr.Markdown(_intro(demo), elem_id="intro")
        with gr.Row():
            upload = gr.File(label="Upload an image", type="binary", elem_id="upload", scale=2)
            with gr.Column(scale=2):
                sample = gr.Dropdown(
                    [NONE, *demo.samples],
                    value=NONE,
                    label="...or a Fashion-MNIST test image" if demo.samples else "(no Fashion-MNIST samples here)",
                    interactive=bool(demo.samples),
                    elem_id="sample",
                )
                input_status = gr.Markdown(elem_id="input-status")
            preview = gr.Image(label="input", type="filepath", interactive=False, height=160, scale=1)

        with gr.Tabs():
            with gr.Tab("Classify", id="classify"):
                with gr.Row():
                    model_a = gr.Dropdown(labels, value=first, label="model A", elem_id="model-a")
                    model_b = gr.Dropdown([NONE, *labels], value=second, label="model B", elem_id="model-b")
                    method = gr.Radio(["eigencam", "gradcam"], value="eigencam", label="class-activation map")
                go = gr.Button("Classify", variant="primary", elem_id="classify-btn")
                status = gr.Markdown(elem_id="classify-status")
                sides = []
                with gr.Row():
                    for side in ("a", "b"):
                        with gr.Column():
                            top = gr.Label(num_top_classes=5, label="top-5", elem_id=f"top5-{side}")
                            info = gr.Markdown(elem_id=f"info-{side}")
                            cam = gr.Image(label="CAM over the input", type="filepath", interactive=False, height=256)
                            sides += [top, info, cam]
                go.click(
                    guarded(6)(demo.classify),
                    [upload, sample, model_a, model_b, method],
                    [*sides, status],
                    api_name="classify",
                )

            with gr.Tab("Look inside", id="look"):
                gr.Markdown(
                    "Left: the effective receptive field of the stage's centre (log scale, RepLKNet's measure). "
                    "Right: what the stage's last block mixes into the query pixel (cyan): MambaOut's 7x7 conv "
                    "reaches a small square; the SSM's hidden attention reaches along its scan."
                )
                with gr.Row():
                    left = gr.Dropdown(labels, value=first, label="model (left)", elem_id="look-left")
                    right = gr.Dropdown([NONE, *labels], value=second, label="model (right)", elem_id="look-right")
                with gr.Row():
                    stage = gr.Slider(0, 3, value=0, step=1, label="stage")
                    qy = gr.Slider(0, 1, value=0.5, step=0.001, label="query row (fraction of the height)")
                    qx = gr.Slider(0, 1, value=0.5, step=0.001, label="query column (fraction of the width)")
                look_btn = gr.Button("Look inside", variant="primary", elem_id="look-btn")
                look_status = gr.Markdown(elem_id="look-status")
                views, mixing_maps = [], []
                with gr.Row():
                    for side in ("left", "right"):
                        with gr.Column():
                            with gr.Row():
                                erf_img = gr.Image(label="ERF", type="filepath", interactive=False, height=220)
                                mix_img = gr.Image(
                                    label="mixing map (click: query pixel)",
                                    type="filepath",
                                    interactive=False,
                                    height=220,
                                    elem_id=f"mix-{side}",
                                )
                            views += [erf_img, mix_img, gr.Markdown(elem_id=f"look-info-{side}")]
                            mixing_maps.append(mix_img)
                look_inputs = [upload, sample, left, right, stage, qy, qx]
                look_btn.click(guarded(6)(demo.look), look_inputs, [*views, look_status], api_name="look_inside")

                def pick(label, evt: gr.SelectData):
                    """A click on a mixing map: the query pixel under it (the map shows the model's input
                    enlarged k times), then the views again."""
                    try:
                        size = demo.bank.get(label).img_size
                        x, y = evt.index
                    except Exception:  # noqa: BLE001 - no model on that side, or a click off the picture
                        return gr.update(), gr.update()
                    side = size * render.factor(size)
                    return round(min(1.0, (y + 0.5) / side), 3), round(min(1.0, (x + 0.5) / side), 3)

                pick.__annotations__["evt"] = gr.SelectData  # gradio finds the event by its class, not a string
                for mix_img, model in zip(mixing_maps, (left, right)):
                    mix_img.select(pick, [model], [qy, qx], api_name=False).then(
                        guarded(6)(demo.look), look_inputs, [*views, look_status], api_name=False
                    )

            with gr.Tab("Long or short?", id="long"):
                gr.Markdown(
                    "The paper's test (Sec. 3.2): a Transformer block on L tokens of width D costs 24D²L + 4DL² "
                    "FLOPs; the quadratic part outweighs the linear one when **L > τ = 6D**. MambaOut's claim: "
                    "ImageNet classification is short, detection and segmentation are long."
                )
                with gr.Row():
                    height = gr.Number(224, label="height", precision=0, elem_id="calc-h")
                    width = gr.Number(224, label="width", precision=0, elem_id="calc-w")
                    patch = gr.Number(16, label="patch size / stride", precision=0, elem_id="calc-patch")
                    dim = gr.Number(384, label="width D", precision=0, elem_id="calc-dim")
                    stages = gr.Radio(
                        ["1 (isotropic, ViT)", "4 (hierarchical)"], value="1 (isotropic, ViT)", label="stages"
                    )
                    zoo_model = gr.Dropdown(
                        [NONE, *models], value=NONE, label="and a zoo model's stages", elem_id="calc-model-choice"
                    )
                calc_btn = gr.Button("Calculate", variant="primary", elem_id="calc-btn")
                calc_status = gr.Markdown(elem_id="calc-status")
                calc_out = gr.Markdown(elem_id="calc-table")
                model_out = gr.Markdown(elem_id="calc-model")
                calc_btn.click(
                    guarded(2)(demo.calculate),
                    [height, width, patch, dim, stages, zoo_model],
                    [calc_out, model_out, calc_status],
                    api_name="long_or_short",
                )
                zoo_btn = gr.Button("Show the zoo table (params, MACs at 224x224, paper top-1)", elem_id="zoo-btn")
                zoo_status = gr.Markdown()
                zoo_out = gr.Markdown(elem_id="zoo-table")
                zoo_btn.click(guarded(1)(demo.zoo), [], [zoo_out, zoo_status], api_name="zoo")

        # one input at a time: an upload clears the sample, a sample clears the upload
        def show(data, chosen):
            img, notes, refused = guarded(2)(demo.preview)(data, chosen)
            return img, refused or notes

        upload.upload(lambda d: (*show(d, None), NONE), [upload], [preview, input_status, sample])
        sample.input(lambda s: (*show(None, s), None), [sample], [preview, input_status, upload])
        upload.clear(lambda: (None, ""), [], [preview, input_status])
    page.queue(max_size=demo.o.queue_size, default_concurrency_limit=demo.o.concurrency)
    page.mambaout = demo  # for tests and the CLI's log line
    return page


THEME_FONTS = dict(font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])


def launch(page, host: str = "127.0.0.1", port: int = 7860, block: bool = True, quiet: bool = False):
    """Serve ``page`` on host:port (localhost unless told), without share links, SSR or an MCP server. Each of
    the ``concurrency`` requests computed at once gets its share of the CPU cores (torch's threads are
    process-wide: more would oversubscribe them)."""
    import gradio as gr

    torch.set_num_threads(max(1, (os.cpu_count() or 1) // page.mambaout.o.concurrency))

    return page.launch(
        server_name=host,
        server_port=port,
        share=False,
        inbrowser=False,
        show_error=False,
        max_file_size=page.mambaout.o.max_bytes,
        ssr_mode=False,
        mcp_server=False,
        enable_monitoring=False,
        prevent_thread_lock=not block,
        quiet=quiet,
        theme=gr.themes.Default(**THEME_FONTS),
        footer_links=["settings"],
    )

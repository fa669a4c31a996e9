"""`mambaout serve`: start the web demo (docs/serve.md)."""

from __future__ import annotations

import logging
import os

from ..errors import DependencyError, UsageError

log = logging.getLogger("mambaout")
LOCAL = ("127.0.0.1", "localhost", "::1")


def cmd_serve(args):
    if not 0 < args.port < 65536 or args.img_size < 16 or args.max_upload_mb <= 0 or args.concurrency < 1:
        raise UsageError("--port 1..65535, --img-size >= 16, --max-upload-mb > 0 and --concurrency >= 1")
    for path in args.checkpoint or []:  # before the slow imports
        if not os.path.exists(path):
            raise UsageError(f"checkpoint {path!r} not found")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported: no calls home
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise DependencyError("mambaout serve needs gradio: pip install -e '.[serve]'") from None
    from .app import Options, build, launch

    options = Options(
        checkpoints=args.checkpoint or [],
        discover_root=None if args.no_discover else ".",
        img_size=args.img_size,
        max_bytes=int(args.max_upload_mb * 1024 * 1024),
        concurrency=args.concurrency,
        data_root=args.data_root,
    )
    page = build(options)
    if args.host not in LOCAL:
        log.warning("serving on %s: anyone who can reach this machine can use the demo", args.host)
    log.info("models: %s", ", ".join(page.mambaout.bank.labels))
    logging.getLogger("httpx").setLevel(logging.WARNING)  # gradio's own start-up probes, one line each
    log.info("serving on http://%s:%d (Ctrl-C stops)", args.host, args.port)
    launch(page, args.host, args.port, quiet=True)
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("serve", help="the web demo: classify, look inside, long or short? (Gradio)")
    p.add_argument("--checkpoint", action="append", metavar="PATH", help="a checkpoint or run folder (repeatable)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--img-size", type=int, default=64, help="input side of the untrained models (default 64)")
    p.add_argument("--max-upload-mb", type=float, default=5.0, help="largest upload accepted (default 5 MB)")
    p.add_argument("--concurrency", type=int, default=2, help="requests computed at once (default 2)")
    p.add_argument("--data-root", metavar="DIR", help="Fashion-MNIST folder for the sample images")
    p.add_argument("--no-discover", action="store_true", help="do not look for runs/*/best.pt, model.safetensors")
    p.set_defaults(func=cmd_serve)

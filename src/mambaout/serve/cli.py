"""`mambaout serve`: start the web demo (docs/serve.md)."""

from __future__ import annotations

import ipaddress
import logging
import math
import os
import re
import socket

from ..errors import DependencyError, UsageError

log = logging.getLogger("mambaout")
LOCAL = ("127.0.0.1", "localhost", "::1")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
HOSTNAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\.?")  # RFC 1123


def check_address(host: str, port: int) -> None:
    """``host`` is an IP address or a host name that resolves, and ``host:port`` is free to listen on (a probe
    socket, closed at once): otherwise gradio fails deep inside its server, after the models are loaded."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if len(host) > 253 or not HOSTNAME.fullmatch(host) or host.replace(".", "").isdigit():
            raise UsageError(f"--host {host!r}: not an IP address or a host name") from None
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds
            probe.bind(address)
    except OSError as e:
        raise UsageError(f"cannot serve on {host}:{port} ({(e.strerror or str(e)).lower()})") from None


def cmd_serve(args):
    if not 0 < args.port < 65536 or args.img_size < 16 or not 0 < args.max_upload_mb < math.inf or args.concurrency < 1:
        raise UsageError("--port 1..65535, --img-size >= 16, --max-upload-mb > 0 and --concurrency >= 1")
    from .checkpoints import UNTRAINED_STRIDE

    if args.img_size % UNTRAINED_STRIDE:
        raise UsageError(f"--img-size {args.img_size}: the untrained models take multiples of {UNTRAINED_STRIDE}")
    for path in args.checkpoint or []:  # before the slow imports
        if not os.path.exists(path):
            raise UsageError(f"checkpoint {path!r} not found")
    from ..explain.inputs import load_model

    for path in args.checkpoint or []:  # a file that is not a checkpoint: refused now, not at the first request
        load_model(None, path)
    if args.data_root:  # given, it must hold the sample images (unset: Debian's copy, or no samples)
        from ..data import FashionMNIST

        FashionMNIST(args.data_root, "test")
    check_address(args.host, args.port)
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

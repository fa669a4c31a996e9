"""Every command of docs/dense.md parses with the CLI (and a training command's preset, flags and --set resolve
to a valid configuration); the block marked "runs as written" runs, in order, in an empty folder."""

import os
import re
import shlex

import pytest

from mambaout.cli import build_parser, main
from mambaout.tasks.dense import cli as dense_cli
from mambaout.tasks.dense.task import resolve_config

DOC = os.path.join(os.path.dirname(__file__), "..", "..", "..", "docs", "dense.md")
RUNS_AS_WRITTEN = "# runs as written"


def _blocks() -> list[str]:
    with open(DOC) as f:
        return re.findall(r"```bash\n(.*?)```", f.read(), re.S)


def _commands(block: str) -> list[list[str]]:
    """Each line's mambaout arguments (line continuations joined, comments dropped, torchrun's prefix too)."""
    out = []
    for line in block.replace("\\\n", " ").splitlines():
        argv = shlex.split(line, comments=True)
        if not argv:
            continue
        if argv[0] == "mambaout":
            out.append(argv[1:])
        else:
            i = argv.index("-m")  # torchrun ... -m mambaout ARGS / python -m mambaout ARGS
            assert argv[i + 1] == "mambaout", line
            out.append(argv[i + 2 :])
    return out


ALL = [argv for block in _blocks() for argv in _commands(block)]


def test_the_doc_has_a_runnable_block_and_the_paper_commands():
    assert sum(b.startswith(RUNS_AS_WRITTEN) for b in _blocks()) == 1
    assert len(ALL) >= 20
    names = {argv[0] for argv in ALL}
    assert {"data", "train-det", "train-seg", "train-multitask", "eval-det", "eval-seg", "predict"} <= names


@pytest.mark.parametrize("argv", ALL, ids=[" ".join(a)[:60] for a in ALL])
def test_every_command_parses(argv):
    args = build_parser().parse_args(argv)
    command = argv[0]
    if command == "train" and args.task != "classification":
        command = {"detection": "train-det", "segmentation": "train-seg", "multitask": "train-multitask"}[args.task]
    if command in dense_cli._TRAIN and not args.resume and not getattr(args, "list_presets", False):
        args.command = command
        kind = dense_cli._TRAIN[command]
        resolve_config(kind, args.preset or dense_cli._DEFAULT_PRESET[kind], args.set, dense_cli._flags(args))


@pytest.mark.slow
def test_the_generated_data_block_runs_as_written(tmp_path, monkeypatch, one_thread):
    monkeypatch.chdir(tmp_path)
    (block,) = [b for b in _blocks() if b.startswith(RUNS_AS_WRITTEN)]
    for argv in _commands(block):
        assert main(argv) == 0, argv
    assert os.path.isfile("shapes_det.png") and os.path.isfile("runs/shapes-seg/best.pt")

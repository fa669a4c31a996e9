"""Layers only point down: each package of mambaout imports only the packages below it.

    errors, utils                       (everything may use them)
    ops < models < analysis             (kernels, networks, counting)
    data                                (datasets, streams: no models, no training)
    engine                              (the loop: knows tasks only through engine.task.Task)
    explain                             (ERF, CAM, hidden attention of a model: no tasks)
    export                              (a model to ONNX / TorchScript / ExportedProgram / safetensors; no tasks)
    tasks < lab < cli                   (what users run; lab and cli may use explain)
    serve                               (the web demo: above explain and analysis, beside lab; cli uses it)
    bench                               (timing core, `mambaout benchmark`: ops, models, registry, analysis,
                                        weights; under lab and cli, which time with it)
    __init__ -> registry, bench         (the package root re-exports create_model and benchmark)

Imports inside functions count too (they are read from the source, not from what happens to be loaded).
"""

import ast
import os

import pytest

SRC = os.path.join(os.path.dirname(__file__), "..", "src", "mambaout")
BASE = {"errors", "utils"}
ALLOWED = {
    "errors": set(),
    "utils": {"errors"},
    "ops": BASE,
    "weights": BASE,
    "registry": BASE | {"weights", "models"},  # models register themselves; the registry builds them
    "models": BASE | {"ops", "registry", "weights"},
    "analysis": BASE | {"ops", "models", "registry"},
    "data": BASE,
    "engine": BASE | {"weights"},
    "tasks": BASE | {"ops", "weights", "registry", "models", "analysis", "data", "engine", "__init__"},
    "explain": BASE | {"ops", "weights", "registry", "models", "analysis", "data", "engine"},
    "export": BASE | {"weights", "registry", "explain"},
    "lab": BASE
    | {"ops", "weights", "registry", "models", "analysis", "data", "engine", "tasks", "explain", "__init__", "bench"},
    "cli": BASE | {"registry", "analysis", "tasks", "lab", "explain", "serve", "bench", "export"},
    "serve": BASE | {"registry", "models", "analysis", "explain", "weights", "data"},
    "__init__": BASE | {"registry", "bench"},  # bench: mambaout.benchmark(...) is public API
    "__main__": {"cli"},
    "bench": BASE | {"ops", "models", "registry", "analysis", "weights"},
}


def _package(path: str) -> str:
    rel = os.path.relpath(path, SRC).split(os.sep)
    return rel[0][:-3] if rel[0].endswith(".py") else rel[0]


def _imports(path: str, source=None):
    """(line, imported mambaout package) for every import in the file."""
    pkg = ["mambaout"] + os.path.relpath(os.path.dirname(path), SRC).split(os.sep)
    pkg = [p for p in pkg if p != "."]
    for node in ast.walk(ast.parse(source if source is not None else open(path).read(), path)):
        if isinstance(node, ast.ImportFrom):
            base = pkg[: len(pkg) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            targets = [module] if node.module else [f"{module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        else:
            continue
        for t in targets:
            parts = t.split(".")
            if parts[0] == "mambaout":
                yield node.lineno, parts[1] if len(parts) > 1 else "__init__"


def _files():
    for folder, _, files in os.walk(SRC):
        for f in sorted(files):
            if f.endswith(".py"):
                yield os.path.join(folder, f)


def test_every_package_has_a_layer():
    assert {_package(p) for p in _files()} <= set(ALLOWED)


@pytest.mark.parametrize("path", sorted(_files()), ids=lambda p: os.path.relpath(p, SRC))
def test_imports_point_down(path):
    own = _package(path)
    bad = [
        f"line {line}: imports mambaout.{target}"
        for line, target in _imports(path)
        if target != own and target not in ALLOWED[own]
    ]
    assert not bad, f"{os.path.relpath(path, SRC)} ({own}) " + "; ".join(bad)


def test_the_check_sees_upward_imports():
    """Relative and absolute imports, at module level or inside functions, resolve to their package."""
    source = "from ..tasks.classification import train\ndef f():\n    import mambaout.cli\nfrom . import state\n"
    found = [t for _, t in _imports(os.path.join(SRC, "engine", "x.py"), source)]
    assert found == ["tasks", "cli", "engine"] or sorted(found) == ["cli", "engine", "tasks"]
    assert {"tasks", "cli"}.isdisjoint(ALLOWED["engine"])

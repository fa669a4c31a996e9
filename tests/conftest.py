import contextlib
import os

import numpy as np
import pytest
import torch

# Small, deterministic and quick on 2 CPU cores.
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="module")
def one_thread():
    """Small ops: one intra-op thread avoids oversubscription when the 2 cores are shared."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def write_fashion_standin(
    root: str, n_train: int = 64, n_test: int = 32, random_labels: bool = False, draw=None
) -> str:
    """Fashion-MNIST-shaped .gz IDX files in ``root``: dark noise plus a class-dependent bright patch
    (``draw(image, c)``; default an 8x8 square at (2c, 2c)). Labels cycle 0..9 unless ``random_labels``."""
    from mambaout.data.fashion_mnist import write_idx

    def square(image, c):
        image[2 * c : 2 * c + 8, 2 * c : 2 * c + 8] = 250

    rng = np.random.default_rng(0)
    os.makedirs(root, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = rng.integers(0, 10, n) if random_labels else np.arange(n) % 10
        images = rng.integers(0, 40 if random_labels else 60, (n, 28, 28))
        for i, c in enumerate(labels):
            (draw or square)(images[i], c)
        write_idx(os.path.join(root, f"{prefix}-images-idx3-ubyte.gz"), images)
        write_idx(os.path.join(root, f"{prefix}-labels-idx1-ubyte.gz"), labels)
    return root


@pytest.fixture(scope="session")
def fashion_standin():
    """The stand-in writer above, as a fixture (test modules cannot import conftest)."""
    return write_fashion_standin


@pytest.fixture
def crash_in_step(monkeypatch):
    """``with crash_in_step(TaskClass, n):`` the task's ``train_step`` raises KeyboardInterrupt at its n-th call
    (a fault injected through the task, as the engine sees a Ctrl-C); the original is back after the block."""

    @contextlib.contextmanager
    def crash(task_cls, n: int):
        step, calls = task_cls.train_step, []

        def dies(self, *a):
            calls.append(1)
            if len(calls) == n:
                raise KeyboardInterrupt
            return step(self, *a)

        monkeypatch.setattr(task_cls, "train_step", dies)
        try:
            yield
        finally:
            monkeypatch.setattr(task_cls, "train_step", step)

    return crash

"""mambaout: Gated-CNN (MambaOut) and visual-Mamba models, scans, training and analyses in one codebase.

>>> import mambaout
>>> model = mambaout.create_model("mambaout_tiny", num_classes=10)
>>> mambaout.list_models("mambaout_*")
>>> print(mambaout.benchmark(["mambaout_femto", "mamba_femto"], device="cpu").to_markdown())
"""

from .bench import benchmark  # noqa: F401  (mambaout.benchmark(...): docs/benchmark.md)
from .errors import CheckpointError, InputError, MambaoutError, UnknownModelError  # noqa: F401
from .registry import create_model, list_models, model_info  # noqa: F401

__version__ = "0.1.0"

"""Image classification: `mambaout train`, `mambaout eval`, `mambaout compare` (see docs/training.md).

from mambaout.tasks.classification import resolve_config, train
summary = train(resolve_config("fashion_mnist", sets=["sched.epochs=5"]))
"""

from .config import ClassificationConfig  # noqa: F401
from .task import ClassificationTask, resolve_config, train  # noqa: F401

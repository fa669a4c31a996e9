"""Detection (Mask R-CNN + FPN), semantic segmentation (UperNet) and multi-task training over any zoo backbone.

    from mambaout.tasks.dense import resolve_config, train
    summary = train(resolve_config("detection", "coco_maskrcnn_1x", flags={"tasks.detection.data.root": "/data/coco"}))

See docs/dense.md.
"""

from .config import DenseConfig  # noqa: F401
from .task import DenseTask, resolve_config, train  # noqa: F401

"""Self-supervised masked-image pre-training (SimMIM, FCMAE) for the hierarchical zoo: ``mambaout pretrain``."""

from .task import PretrainTask, build_model, resolve_config, train

__all__ = ["PretrainTask", "build_model", "resolve_config", "train"]

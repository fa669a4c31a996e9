"""Model families. Importing this package registers every model with `mambaout.registry`."""
from . import mambaout  # noqa: F401
from .blocks import GatedBlock, MlpHead, Stem, Downsample  # noqa: F401
from .hierarchical import HierarchicalNet  # noqa: F401
from .mixers import build_mixer, list_mixers, register_mixer  # noqa: F401
from . import ssm, vit, vmamba, mamba, vim, localmamba, plainmamba, efficientvmamba, hybrid  # noqa: F401,E402

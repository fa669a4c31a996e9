"""Lab errors: user-facing (bad experiment names, presets, overrides) -> one-line CLI error, exit 2."""
from ..errors import MambaoutError


class LabError(MambaoutError):
    pass

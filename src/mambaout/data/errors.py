from ..errors import MambaoutError


class DatasetError(MambaoutError):
    """Wrong dataset root/layout or unreadable dataset files."""

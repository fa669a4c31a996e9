"""User-facing errors: the CLI prints their message on one line and exits with code 2."""


class MambaoutError(Exception):
    """Base class for errors caused by user input (bad names, files, sizes, arguments)."""


class UnknownModelError(MambaoutError, KeyError):
    def __str__(self):  # KeyError would quote the message
        return str(self.args[0])


class CheckpointError(MambaoutError):
    pass


class InputError(MambaoutError, ValueError):
    pass

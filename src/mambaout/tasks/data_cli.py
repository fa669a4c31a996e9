"""The ``mambaout data`` command group: commands that write data sets to disk register under it.

    from mambaout.tasks.data_cli import data_group
    def register(sub):
        p = data_group(sub).add_parser("make-shapes", help=...)

``data_group`` creates the ``data`` parser the first time and returns the same subparsers on every later call,
so several modules add their commands without knowing about each other.
"""

from __future__ import annotations

from ..errors import UsageError


def data_group(sub):
    """The ``data`` command's subparsers (created on the first call, the same object afterwards)."""
    parser = sub.choices.get("data")
    if parser is None:
        parser = sub.add_parser(
            "data", help="write data sets to disk: make-shapes, make-scenes (mambaout data COMMAND --help)"
        )
        parser.data_commands = parser.add_subparsers(dest="data_command", metavar="COMMAND")
        parser.set_defaults(func=lambda args: _no_command(parser))
    return parser.data_commands


def _no_command(parser) -> int:
    names = ", ".join(sorted(parser.data_commands.choices)) or "none"
    raise UsageError(f"data: name a command ({names})")

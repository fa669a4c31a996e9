"""The ``mambaout data`` command group: each data command's module adds its subcommand to the one group."""

from __future__ import annotations


def data_group(subparsers):
    """The ``data`` group's subparsers, created on the first call and found again on later ones (so modules
    that each add a ``data`` subcommand can be registered in any order)."""
    parser = subparsers.choices.get("data")
    if parser is None:
        parser = subparsers.add_parser("data", help="make data sets (generated scenes and shapes)")
        parser.set_defaults(func=lambda args: parser.print_help() or 2)
        parser._data_commands = parser.add_subparsers(dest="data_command", metavar="COMMAND")
    return parser._data_commands

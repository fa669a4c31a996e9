"""The ``data`` command group: created once, shared by the modules that register under it."""

import argparse

import pytest

from mambaout.cli import main
from mambaout.tasks.data_cli import data_group


def test_data_group_is_created_once():
    sub = argparse.ArgumentParser().add_subparsers(dest="command")
    first = data_group(sub)
    first.add_parser("one")
    second = data_group(sub)
    second.add_parser("two")
    assert first is second and set(first.choices) == {"one", "two"} and list(sub.choices) == ["data"]


def test_data_without_a_command_is_a_one_line_error(capsys):
    assert main(["data"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: data: name a command") and "make-shapes" in err and "\n" not in err


@pytest.mark.parametrize("argv", [["data", "nope"], ["data", "make-shapes", "x"]])
def test_bad_data_arguments(argv, capsys):
    assert main(argv) == 2
    assert capsys.readouterr().err.startswith("error:")

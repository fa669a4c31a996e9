"""Command-line values shared by the subcommands of every package."""

from __future__ import annotations

from ..errors import UsageError


def img_size(values: list[int]) -> tuple[int, int]:
    """``--img-size H [W]`` -> (H, W); one value means a square."""
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or min(values) <= 0:
        raise UsageError(f"--img-size takes one or two positive integers (H W), got {values}")
    return tuple(values)

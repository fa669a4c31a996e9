"""Plain-text/Markdown tables for reports and the CLI."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence


def fmt(value, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def markdown_table(
    rows: Iterable[Mapping], columns: Sequence[str], headers: Sequence[str] | None = None, digits: int = 2
) -> str:
    """Render dict rows as a Markdown table with aligned columns (readable in a terminal too)."""
    headers = list(headers or columns)
    cells = [[fmt(row.get(c), digits) for c in columns] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    numeric = [all(_is_number(r[i]) for r in cells) and cells for i in range(len(columns))]

    def line(values):
        return "| " + " | ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)) + " |"

    sep = "|" + "|".join(("-" * (w + 1) + ":") if num else ("-" * (w + 2)) for w, num in zip(widths, numeric)) + "|"
    return "\n".join([line(headers), sep] + [line(r) for r in cells])


def _is_number(text: str) -> bool:
    try:
        float(text.rstrip("%×x"))
        return True
    except ValueError:
        return text == "-"

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


class Table:
    """Rows of dicts with a column order: printed as Markdown, CSV or JSON (the benchmark's result)."""

    def __init__(
        self,
        rows: list[dict],
        columns: Sequence[str] | None = None,
        headers: Sequence[str] | None = None,
        digits: int = 2,
        notes: list[str] | None = None,
    ):
        self.rows = list(rows)
        self._columns, self._headers, self.digits = columns, headers, digits
        self.notes = list(notes or [])

    @property
    def columns(self) -> list[str]:
        if self._columns:
            return list(self._columns)
        return list(dict.fromkeys(k for r in self.rows for k in r))

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self):
        return iter(self.rows)

    def __getitem__(self, i):
        return self.rows[i]

    def to_markdown(self) -> str:
        text = markdown_table(self.rows, self.columns, self._headers if self._columns else None, self.digits)
        return text + "".join(f"\n\n{n}" for n in self.notes)

    def to_csv(self) -> str:
        import csv
        import io

        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=self.columns, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        for r in self.rows:
            w.writerow({k: "" if r.get(k) is None else r[k] for k in self.columns})
        return buf.getvalue()

    def to_json(self, indent: int | None = 2) -> str:
        import json

        return json.dumps(dict(rows=self.rows, notes=self.notes), indent=indent, default=str)

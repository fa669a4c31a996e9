"""Metrics rows: JSONL (one object a line), CSV and, when installed, TensorBoard.

    logger = RunLogger("runs/x", enabled=distributed.is_main())
    logger.log({"epoch": 0, "train_loss": 1.2, "val_top1": 80.1}, step=123)
    logger.rows        # every row logged so far (also those read back on resume)
    logger.close()
    read_metrics("runs/x")   # the rows of a run folder's metrics.jsonl

On resume the existing ``metrics.jsonl`` is read back and rows after the resumed step are dropped, so the
files hold each step once. TensorBoard is optional: if ``torch.utils.tensorboard``
cannot be imported it is skipped silently.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os


def read_rows(path: str) -> list[dict]:
    """The rows of a JSONL metrics file (blank lines skipped); [] when the file does not exist."""
    if not os.path.isfile(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def read_metrics(run_dir: str) -> list[dict]:
    """The rows a run wrote to ``<run_dir>/metrics.jsonl``."""
    return read_rows(os.path.join(run_dir, "metrics.jsonl"))


class RunLogger:
    def __init__(
        self,
        run_dir: str,
        enabled: bool = True,
        resume_step: int | None = None,
        tensorboard: bool = True,
        jsonl_name: str = "metrics.jsonl",
        csv_name: str = "metrics.csv",
    ):
        self.run_dir, self.enabled = run_dir, enabled
        self.jsonl_path = os.path.join(run_dir, jsonl_name)
        self.csv_path = os.path.join(run_dir, csv_name)
        self.rows: list[dict] = []
        self._tb = None
        if not enabled:
            return
        os.makedirs(run_dir, exist_ok=True)
        if resume_step is not None:
            self.rows = [r for r in read_rows(self.jsonl_path) if r.get("step", 0) <= resume_step]
        self._rewrite()
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(os.path.join(run_dir, "tb"))
            except Exception:  # tensorboard not installed (or broken): optional
                self._tb = None

    def _rewrite(self):
        with open(self.jsonl_path, "w") as f:
            for r in self.rows:
                f.write(json.dumps(r) + "\n")
        self._write_csv()

    def _write_csv(self):
        keys: list[str] = []
        for r in self.rows:
            keys += [k for k in r if k not in keys]
        tmp = self.csv_path + ".tmp"
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=keys)
            w.writeheader()
            w.writerows(self.rows)
        os.replace(tmp, self.csv_path)

    def log(self, row: dict, step: int | None = None) -> None:
        row = {k: (float(v) if hasattr(v, "item") else v) for k, v in row.items()}
        self.rows.append(row)
        if not self.enabled:
            return
        with open(self.jsonl_path, "a") as f:
            f.write(json.dumps(row) + "\n")
        self._write_csv()
        if self._tb is not None:
            x = step if step is not None else row.get("epoch", len(self.rows))
            for k, v in row.items():
                if (
                    isinstance(v, (int, float))
                    and not isinstance(v, bool)
                    and k not in ("epoch", "step")
                    and math.isfinite(v)
                ):
                    self._tb.add_scalar(k, v, x)
            self._tb.flush()

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None


def attach_file_log(run_dir: str) -> None:
    """Also write the ``mambaout`` log to ``<run_dir>/train.log`` (until :func:`detach_file_logs`)."""
    root = logging.getLogger("mambaout")
    path = os.path.abspath(os.path.join(run_dir, "train.log"))
    if any(getattr(h, "baseFilename", None) == path for h in root.handlers):
        return
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s: %(message)s"))
    handler.run_log = True
    root.addHandler(handler)
    if root.level == logging.NOTSET or root.level > logging.INFO:
        root.setLevel(logging.INFO)


def detach_file_logs() -> None:
    root = logging.getLogger("mambaout")
    for h in [h for h in root.handlers if getattr(h, "run_log", False)]:
        root.removeHandler(h)
        h.close()

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

from .state import temp_path, write_failed


def read_rows(path: str) -> list[dict]:
    """The rows of a JSONL metrics file (blank lines skipped); [] when the file does not exist. A last line cut
    short (a process killed mid-write) is dropped: the rows before it are whole."""
    if not os.path.isfile(path):
        return []
    with open(path) as f:
        lines = [line for line in f if line.strip()]
    rows = []
    for i, line in enumerate(lines):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if i < len(lines) - 1:
                raise
    return rows


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
        self._replace(self.jsonl_path, lambda f: f.writelines(json.dumps(r) + "\n" for r in self.rows))
        self._write_csv()

    def _write_csv(self):
        keys: list[str] = []
        for r in self.rows:
            keys += [k for k in r if k not in keys]

        def write(f):
            w = csv.DictWriter(f, fieldnames=keys)
            w.writeheader()
            w.writerows(self.rows)

        self._replace(self.csv_path, write)

    @staticmethod
    def _replace(path: str, write) -> None:
        """Write a whole file next to ``path`` and move it over: a full disk leaves the old file, no partial one."""
        tmp = temp_path(path)
        try:
            with open(tmp, "w", newline="") as f:
                write(f)
            os.replace(tmp, path)
        except OSError as e:
            raise write_failed(path, e, "the previous version is kept") from None
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)

    def log(self, row: dict, step: int | None = None) -> None:
        row = {k: (float(v) if hasattr(v, "item") else v) for k, v in row.items()}
        self.rows.append(row)
        if not self.enabled:
            return
        data = (json.dumps(row) + "\n").encode()
        with open(self.jsonl_path, "ab", buffering=0) as f:  # unbuffered: a failed write is known to have failed
            end = f.tell()
            try:
                while data:
                    data = data[f.write(data) :]
            except OSError as e:  # a full disk: cut the torn row off again
                f.truncate(end)
                raise write_failed(self.jsonl_path, e, "the rows before this one are kept") from None
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


class _RunFileLog(logging.FileHandler):
    """``train.log``: a write that fails (a full disk) turns it off with one line, not a traceback per record."""

    def handleError(self, record):
        import sys

        if getattr(self, "failed", False):
            return
        self.failed = True
        err = sys.exc_info()[1]
        print(
            f"warning: cannot write {self.baseFilename} ({getattr(err, 'strerror', err)}); "
            "the run log goes to the terminal only",
            file=sys.stderr,
        )

    def emit(self, record):
        if not getattr(self, "failed", False):
            super().emit(record)


class _Held(logging.Handler):
    """Records kept in memory until the run folder may be written (see :func:`hold_logs`)."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []
        self.run_log = True

    def emit(self, record):
        self.records.append(record)


def hold_logs() -> None:
    """Keep the ``mambaout`` log in memory until :func:`attach_file_log` writes it to ``train.log``: nothing
    goes to a run folder before the run's configuration has passed every check."""
    root = logging.getLogger("mambaout")
    root.addHandler(_Held())
    if root.level == logging.NOTSET or root.level > logging.INFO:
        root.setLevel(logging.INFO)


def attach_file_log(run_dir: str) -> None:
    """Also write the ``mambaout`` log to ``<run_dir>/train.log`` (until :func:`detach_file_logs`), starting with
    what :func:`hold_logs` kept."""
    root = logging.getLogger("mambaout")
    held = [h for h in root.handlers if isinstance(h, _Held)]
    for h in held:
        root.removeHandler(h)
    path = os.path.abspath(os.path.join(run_dir, "train.log"))
    if any(getattr(h, "baseFilename", None) == path for h in root.handlers):
        return
    handler = _RunFileLog(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s: %(message)s"))
    handler.run_log = True
    for h in held:
        for record in h.records:
            handler.handle(record)
    root.addHandler(handler)
    if root.level == logging.NOTSET or root.level > logging.INFO:
        root.setLevel(logging.INFO)


def detach_file_logs() -> None:
    root = logging.getLogger("mambaout")
    for h in [h for h in root.handlers if getattr(h, "run_log", False)]:
        root.removeHandler(h)
        h.close()

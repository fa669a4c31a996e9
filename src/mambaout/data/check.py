"""A pass over a detection or segmentation data set before any work: every image's header opened and every
label file read, so that a bad file stops a run in its first minute, not hours in, and the counts the readers
promise (skipped objects, out-of-range label pixels) are known up front for the run log and summary.

    report = check(dataset, "segmentation train", workers=4)   # never raises: under DDP rank 0 checks
    report.enforce(on_bad_label="error")                       # every rank raises the same one line
    checked(dataset, ...)                                      # both, the report kept on the data set

Policy (:meth:`DataReport.enforce`): a missing or unreadable image or label file, or one whose size disagrees
with its annotation, always stops the run; label values out of range stop it under ``on_bad_label='error'``
and are counted (read as 255) under ``'ignore'``; malformed detection objects are skipped and counted as the
readers do (:mod:`.detection`).
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ..errors import DatasetError

log = logging.getLogger("mambaout")
SHOWN = 5  # bad files named in the log when a check stops


@dataclass
class DataReport:
    name: str  # e.g. "segmentation train"
    items: int  # images checked
    bad_files: list[str] = field(default_factory=list)  # "path: why", unusable
    bad_labels: list[tuple[str, int]] = field(default_factory=list)  # ("path: why", out-of-range pixels)
    skipped: dict[str, int] = field(default_factory=dict)  # the reader's skipped objects by reason

    def counts(self) -> dict:
        """What the run summary records."""
        return {
            "images": self.items,
            "unusable_files": len(self.bad_files),
            "labels_out_of_range": len(self.bad_labels),
            "out_of_range_pixels": sum(n for _, n in self.bad_labels),
            "skipped_objects": dict(sorted(self.skipped.items())),
        }

    def enforce(self, on_bad_label: str = "error") -> DataReport:
        """Raise the first problem as one :class:`DatasetError` line, or log the counts and return self."""
        if self.bad_files:
            self._stop(self.bad_files, "images cannot be used (missing, unreadable or mis-sized): fix or remove them")
        if self.bad_labels and on_bad_label == "error":
            self._stop(
                [p for p, _ in self.bad_labels],
                "label files hold values out of range: fix them, or set tasks.segmentation.data.on_bad_label=ignore "
                "to read those pixels as 255 (ignored)",
            )
        c = self.counts()
        parts = [f"{self.items} images checked"]
        if self.bad_labels:
            parts.append(
                f"{c['labels_out_of_range']} label files with values out of range: {c['out_of_range_pixels']} "
                "pixels read as 255 (on_bad_label: ignore)"
            )
        if self.skipped:
            parts.append("skipped objects: " + ", ".join(f"{v} {k}" for k, v in c["skipped_objects"].items()))
        # skipped objects were already warned about by the reader; out-of-range pixels are news
        (log.warning if self.bad_labels else log.info)("%s set: %s", self.name, "; ".join(parts))
        return self

    def _stop(self, problems: list[str], what: str):
        for p in problems[1:SHOWN]:  # the first is in the error itself
            log.error("%s set: %s", self.name, p)
        more = f"; the log names {min(len(problems), SHOWN) - 1} more" if len(problems) > 1 else ""
        raise DatasetError(f"{problems[0]} ({len(problems)} of the {self.items} {what}{more})")


def check(dataset, name: str, workers: int = 1) -> DataReport:
    """Run ``dataset.check_item(i)`` for every item (threads: the work is file reads and PNG decoding)."""

    def one(i: int):
        try:
            return None, dataset.check_item(i)
        except DatasetError as e:
            return str(e), None

    with ThreadPoolExecutor(max(1, workers)) as pool:
        results = list(pool.map(one, range(len(dataset))))
    report = DataReport(name, len(dataset), skipped=dict(getattr(dataset, "skipped", {})))
    for bad, label in results:
        if bad:
            report.bad_files.append(bad)
        elif label:
            report.bad_labels.append(label)
    return report


def checked(dataset, name: str, workers: int = 1, on_bad_label: str = "error", main: bool = True, broadcast=None):
    """:func:`check` on the main process, its report sent to every process (``broadcast``: e.g.
    ``engine.distributed.broadcast_object``), enforced there and kept as ``dataset.check_report``."""
    report = check(dataset, name, workers) if main else None
    if broadcast is not None:
        report = broadcast(report)
    dataset.check_report = report.enforce(on_bad_label)
    return dataset

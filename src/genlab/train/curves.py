"""Live training curves: a ``plots/<stage>/*.tsv`` and the stage's MLflow run that grow as it trains.

The loop (:mod:`genlab.train.loop`) hands each history row to a :class:`LiveCurve` as it is
made. The curve appends it to its TSV as one whole line in one ``write`` on an ``O_APPEND``
file (so ``dvc plots show``, the VS Code DVC extension or ``tail -f`` never read a torn row)
and logs it to the stage's MLflow run at the row's step. On start, and after a resume, the
file is rewritten from the rows the checkpoint holds: rows a killed run wrote past its last
checkpoint are dropped, never repeated. The stage still writes the final file at the end
(the same rows).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from genlab.runtime import format_tsv_row, write_tsv
from genlab.tracking import StageRun, safe, store_lock


class LiveCurve:
    """One curve: a TSV file and (optionally) an MLflow run.

    `columns` picks and orders the row keys written to the file (default: all, in the first
    row's order); `step_key` is the row key MLflow uses as the step; `name` is the curve's
    name in :func:`genlab.tracking.log_stage`'s ``history`` (it then skips the rows logged here).
    """

    def __init__(self, path: str | Path, run: StageRun | None = None, *, name: str,
                 columns: Sequence[str] | None = None, step_key: str = "step",
                 transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None):
        self.path, self.run, self.name = Path(path), run or StageRun(), name
        self.columns, self.step_key, self.transform = list(columns) if columns else None, step_key, transform
        self.keys: list[str] | None = None

    def _row(self, row: dict[str, Any]) -> dict[str, Any]:
        row = self.transform(row) if self.transform else row
        return {k: row.get(k) for k in self.columns} if self.columns else row

    def reset(self, rows: list[dict[str, Any]]) -> None:
        """Rewrite the file with `rows` (a fresh run: none; a resume: the checkpoint's) and log them."""
        rows = [self._row(r) for r in rows]
        self.keys = list(rows[0]) if rows else None
        write_tsv(self.path, rows)  # atomic: a reader sees the old file or the new one
        self._log(rows)
        if self.run.active:
            self.run.streamed.add(self.name)

    def append(self, row: dict[str, Any]) -> None:
        """Add one row: one whole line, written and flushed in one system call."""
        row = self._row(row)
        head = ""
        if self.keys is None:
            self.keys = list(row)
            head = "\t".join(self.keys) + "\n"
        line = head + format_tsv_row(row, self.keys) + "\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)
        self._log([row])

    def _log(self, rows: list[dict[str, Any]]) -> None:
        if self.run.active and rows:
            with store_lock(self.run.uri):
                safe(self.run.log_history, rows, self.step_key, "")

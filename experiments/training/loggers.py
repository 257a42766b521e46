"""Metric logs of a training run: always a CSV and a JSON-lines file, optionally wandb.

A logger has `log(metrics: dict[str, float], step: int)`, `resume(step: int)`
(called once the run knows the step it resumes from) and `close()`.
wandb is offline by default (no account, no network); `wandb sync` uploads a
run folder later if wanted.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

from experiments.data.cache import atomic_write


class FileLogger:
    """`metrics.csv` and `metrics.jsonl` in the run folder, one row per logging call.

    The CSV's columns are the keys of the first row plus any later ones
    (the file is rewritten when a new key appears, which happens at most a
    few times per run: training keys first, validation keys later). Appends
    to existing files, so a resumed run continues its log: `resume(step)` drops
    the rows logged after the restored checkpoint (they are logged again), and
    a torn last line (a kill in the middle of an append) is dropped on reading.
    """

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.jsonl_path = self.directory / "metrics.jsonl"
        self.csv_path = self.directory / "metrics.csv"
        self.rows, self._torn = self._read_rows()
        self.columns = sorted({k for row in self.rows for k in row} - {"step"})

    def _read_rows(self) -> tuple[list[dict], bool]:
        """The logged rows, and whether a line was torn (it is dropped: its step is logged again)."""
        if not self.jsonl_path.exists():
            return [], False
        rows, torn = [], False
        for line in filter(str.strip, self.jsonl_path.read_text().splitlines()):
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                torn = True
        return rows, torn

    def resume(self, step: int) -> None:
        """Keep only the rows up to `step` (the restored checkpoint's), in both files."""
        kept = [row for row in self.rows if row["step"] <= step]
        if kept != self.rows or self._torn:
            self.rows, self._torn = kept, False
            atomic_write(self.jsonl_path, lambda tmp: tmp.write_text("".join(json.dumps(r) + "\n" for r in kept)))
            self._rewrite_csv()

    def log(self, metrics: dict[str, float], step: int) -> None:
        row = {"step": int(step), **{k: _plain(v) for k, v in metrics.items()}}
        self.rows.append(row)
        with self.jsonl_path.open("a") as f:
            f.write(json.dumps(row) + "\n")
        new_columns = sorted(set(row) - {"step"} - set(self.columns))
        if new_columns or not self.csv_path.exists():
            self.columns = sorted(set(self.columns) | set(new_columns))
            self._rewrite_csv()
        else:
            with self.csv_path.open("a", newline="") as f:
                csv.DictWriter(f, ["step", *self.columns]).writerow(row)

    def _rewrite_csv(self) -> None:
        def write(path: Path) -> None:
            with path.open("w", newline="") as f:
                writer = csv.DictWriter(f, ["step", *self.columns])
                writer.writeheader()
                writer.writerows(self.rows)

        atomic_write(self.csv_path, write)

    def close(self) -> None:
        pass


def _plain(value: Any) -> Any:
    value = float(value)
    return None if math.isnan(value) else value


class WandbLogger:
    """Weights & Biases run; `mode` "offline" (default), "online" or "disabled".

    `run_config` is the resolved training config, stored with the run.
    """

    def __init__(self, *, project: str, mode: str = "offline", dir: str | None = None,
                 name: str | None = None, run_config: dict | None = None, **kwargs: Any):
        import wandb

        if dir is not None:
            Path(dir).mkdir(parents=True, exist_ok=True)
        self.run = wandb.init(project=project, mode=mode, dir=dir, name=name, config=run_config,
                              reinit="finish_previous", **kwargs)

    def log(self, metrics: dict[str, float], step: int) -> None:
        self.run.log(dict(metrics), step=int(step))

    def resume(self, step: int) -> None:
        pass  # each (re)start is a run of its own

    def close(self) -> None:
        self.run.finish()

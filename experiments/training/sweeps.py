"""Sweeps that tell the truth: every job runs, then the failed ones are named and the sweep exits 1.

A failing job of a multirun records its traceback in `<job folder>/error.txt`
and returns NaN (`experiments.train.main`), so the launcher goes on with the
other jobs. `SweepSummary`, a Hydra callback (`conf/hydra/default.yaml`), then
reads the error files of this sweep, prints one line per failed job and
exits with status 1, so a script or a scheduler sees the failure.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

ERROR_FILE = "error.txt"


@dataclasses.dataclass(frozen=True)
class FailedJob:
    folder: Path
    error: str  # the last line of the traceback, e.g. "ValueError: ..."


def failed_jobs(sweep_dir: Path, *, since: float = 0.0) -> list[FailedJob]:
    """Jobs under `sweep_dir` whose `error.txt` was written at or after `since` (a `time.time()`).

    Job folders are named after their overrides, so a folder can hold an older
    sweep's job; `since` keeps only this sweep's errors.
    """
    failed = []
    for path in sorted(Path(sweep_dir).glob(f"*/{ERROR_FILE}")):
        if path.stat().st_mtime >= since:
            lines = [line for line in path.read_text().splitlines() if line.strip()]
            failed.append(FailedJob(path.parent, lines[-1] if lines else "(empty error file)"))
    return failed


def summary(failed: list[FailedJob]) -> str:
    """One line per failed job: its folder and the error."""
    lines = [f"sweep: {len(failed)} job(s) failed:"]
    lines += [f"  {job.folder.name}: {job.error}  (traceback in {job.folder / ERROR_FILE})" for job in failed]
    return "\n".join(lines)


class SweepSummary(Callback):
    """Names the failed jobs of a multirun after all have run, and exits with status 1 if any failed."""

    def __init__(self) -> None:
        self.started = time.time()

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        # File times can be a little coarser than time.time(): allow one second.
        self.started = time.time() - 1.0

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        failed = failed_jobs(Path(config.hydra.sweep.dir), since=self.started)
        if failed:
            print(summary(failed), file=sys.stderr)
            raise SystemExit(1)

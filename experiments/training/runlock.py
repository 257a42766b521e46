"""One training process per run folder: an exclusive lock held while the run trains.

Two identical commands write the same checkpoints and metrics; the second
one is refused with a message naming the process that holds the folder.
The lock is an `flock` on `<run folder>/.lock`: the operating system drops
it when the process ends, also by `kill -9`, so a crashed run never leaves a
stale lock behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from pathlib import Path
from typing import Iterator


class RunLockedError(RuntimeError):
    """Another process is training in the same run folder."""


@contextlib.contextmanager
def run_lock(folder: str | Path) -> Iterator[None]:
    """Hold the run folder's lock inside the block; raise `RunLockedError` at once if another process has it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "another process"
            raise RunLockedError(f"{folder} is in use by a training run ({owner}): wait for it to finish, "
                                 f"or give this run another folder (e.g. another seed or paths.log_dir).") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)

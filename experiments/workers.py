"""Work spread over the machine's cores: rendering and feature extraction of many recordings.

librosa, soxr and the synthesizer run on one core each; a corpus pass over hundreds of
recordings is worth spreading over worker processes. Workers are spawned (never forked: the
parent may hold JAX's threads), which costs each a second or two of imports, so short lists
stay in this process.

A spawned worker imports the parent's main module, which is only safe when that module
guards its work with ``if __name__ == "__main__"``. So library calls use one process unless
``$SDTW_RETRIEVAL_WORKERS`` says otherwise, and the command-line apps (``experiments.reproduce``,
``experiments.train``), whose main modules are guarded, set it to the number of cores.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
from typing import Callable, Iterable, Sequence, TypeVar

from tqdm.auto import tqdm

__all__ = ["MIN_ITEMS", "WORKERS_VARIABLE", "available_workers", "map_in_workers", "use_all_cores"]

T = TypeVar("T")
R = TypeVar("R")

MIN_ITEMS = 16  # below this many items, spawning workers costs more than it saves


WORKERS_VARIABLE = "SDTW_RETRIEVAL_WORKERS"


def available_workers() -> int:
    """Worker processes to use: ``$SDTW_RETRIEVAL_WORKERS``, 1 when it is not set."""
    value = os.environ.get(WORKERS_VARIABLE, "1")
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{WORKERS_VARIABLE} must be a positive integer, got {value!r}")
    return int(value)


def use_all_cores() -> None:
    """Let :func:`map_in_workers` use every core this process may run on, unless
    ``$SDTW_RETRIEVAL_WORKERS`` is set (for the entry points of guarded main modules)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    os.environ.setdefault(WORKERS_VARIABLE, str(cores))


def map_in_workers(fn: Callable[[T], R], items: Sequence[T] | Iterable[T], *, desc: str | None = None,
                   progress: bool = True, workers: int | None = None) -> list[R]:
    """``[fn(item) for item in items]``, in order, over ``workers`` processes (default
    :func:`available_workers`), with a progress bar.

    ``fn`` must be a module-level function and the items picklable. Runs in this process when
    there is one worker or fewer than :data:`MIN_ITEMS` items. An exception in a worker is raised
    here.
    """
    items = list(items)
    workers = min(available_workers() if workers is None else workers, len(items))
    bar = dict(total=len(items), desc=desc, disable=not progress)
    if workers <= 1 or len(items) < MIN_ITEMS:
        return [fn(item) for item in tqdm(items, **bar)]
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
        return list(tqdm(pool.map(fn, items), **bar))

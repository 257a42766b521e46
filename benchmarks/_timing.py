"""Shared helpers for the benchmark scripts: robust timing and table printing."""

from __future__ import annotations

import time
from typing import Any, Callable

import jax


def best_time(fn: Callable[[], Any], *, repeats: int = 10, warmup: int = 1) -> float:
    """Fastest wall time of ``fn()`` in seconds (after warm-up/compilation).

    The minimum is the least noisy estimate on a shared machine.
    """
    for _ in range(warmup):
        jax.block_until_ready(fn())
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return min(times)


def print_table(header: list[str], rows: list[list[Any]]) -> None:
    """A Markdown table, so the output can be pasted into the README."""
    cells = [header] + [[f"{c:.3g}" if isinstance(c, float) else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    fmt = lambda row: "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |"  # noqa: E731
    print(fmt(cells[0]))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in cells[1:]:
        print(fmt(row))


RECORD_HELP = "also save the output, stamped with commit and machine, as docs/results/<script>.md (the README includes it)"


def recorded_output(record: bool):
    """Context for a benchmark's printing: with ``--record``, saved as ``docs/results/<script>.md``,
    or ``<script>_gpu.md`` when JAX runs on a GPU (so GPU and CPU figures sit side by side)."""
    import sys
    from pathlib import Path

    from experiments.provenance import command_line, recorded

    script = Path(sys.argv[0]).stem
    name = f"{script}_gpu" if jax.default_backend() == "gpu" else script
    return recorded(name, command_line(f"python benchmarks/{script}.py", sys.argv[1:]), record=record)

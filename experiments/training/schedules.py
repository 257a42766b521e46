"""Learning-rate schedules sized by the run length."""

from __future__ import annotations

import optax


def warmup_cosine(*, peak_value: float, total_steps: int, warmup_fraction: float = 0.05,
                  end_value: float = 0.0) -> optax.Schedule:
    """Linear warm-up over `warmup_fraction` of the run, then cosine decay to `end_value`.

    Given as a fraction so that the same config serves a 2-step smoke run and
    a 100k-step run (optax's schedule needs warm-up < total steps).
    """
    total_steps = max(int(total_steps), 1)
    warmup = min(int(round(warmup_fraction * total_steps)), total_steps - 1)
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0 if warmup > 0 else peak_value, peak_value=peak_value,
        warmup_steps=warmup, decay_steps=total_steps, end_value=end_value,
    )

"""Dropout keys passed explicitly, so that a training step is a pure function of its inputs."""

from __future__ import annotations

import jax


def split_or_none(key: jax.Array | None, count: int) -> list[jax.Array | None]:
    """`count` independent keys from `key`, or `count` Nones (no dropout).

    The models take their dropout key as an argument instead of holding an
    `nnx.Rngs` stream: the key of step s is then derived from (seed, s), and a
    resumed run draws the same dropout masks as an uninterrupted one without
    checkpointing any RNG state.
    """
    if key is None:
        return [None] * count
    return list(jax.random.split(key, count))

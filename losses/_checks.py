"""Argument validation shared by the losses.

Everything that can be decided from shapes, dtypes and static values raises a
ValueError naming the argument. Value checks (labels in range, binary
targets) run only where the value is concrete: under `jit` or `vmap` the
argument is a tracer and the check is skipped rather than forcing a host
round trip.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np


def concrete_value(x: Any) -> np.ndarray | None:
    """The NumPy value of `x`, or None if `x` is traced."""
    if isinstance(x, jax.core.Tracer):
        return None
    try:
        return np.asarray(x)
    except Exception:  # pragma: no cover - exotic array types
        return None


def as_float_array(x: Any, name: str, ndim: int, shape_words: str) -> jax.Array:
    """`x` as an array of rank `ndim`, in a floating dtype of at least float32.

    Reductions (softmax, log-sum-exp) then never run in half precision.
    """
    x = jnp.asarray(x)
    if x.ndim != ndim:
        raise ValueError(
            f"`{name}` must have shape {shape_words} (rank {ndim}), got shape {x.shape}."
        )
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.result_type(float))
    return x.astype(jnp.promote_types(x.dtype, jnp.float32))


def as_int_array(x: Any, name: str, ndim: int, shape_words: str) -> jax.Array:
    """`x` as an integer array of rank `ndim`."""
    x = jnp.asarray(x)
    if x.ndim != ndim:
        raise ValueError(
            f"`{name}` must have shape {shape_words} (rank {ndim}), got shape {x.shape}."
        )
    if not jnp.issubdtype(x.dtype, jnp.integer):
        raise ValueError(f"`{name}` must have an integer dtype, got {x.dtype}.")
    return x


def check_shape(x: jax.Array, name: str, expected: tuple[int, ...], words: str) -> None:
    """Raise if `x.shape` differs from `expected` (described as `words`)."""
    if tuple(x.shape) != tuple(expected):
        raise ValueError(f"`{name}` must have shape {words} = {expected}, got {x.shape}.")


def check_paddings(paddings: jax.Array, name: str) -> None:
    """Raise if concrete `paddings` hold anything other than 0.0 and 1.0."""
    value = concrete_value(paddings)
    if value is not None and not np.all((value == 0) | (value == 1)):
        raise ValueError(f"`{name}` must contain only 0.0 (valid) and 1.0 (padded).")


def _check_scalar(x: Any, name: str, admissible: Callable[[np.ndarray], bool], requirement: str) -> None:
    value = concrete_value(x)
    if value is None:  # traced: checked where it is concrete
        return
    if value.ndim != 0:
        raise ValueError(f"`{name}` must be a scalar, got shape {value.shape}.")
    if not admissible(value):
        raise ValueError(f"`{name}` must be {requirement}, got {value.item()}.")


def check_positive_scalar(x: Any, name: str) -> None:
    """Raise if a concrete `x` is not a scalar > 0."""
    _check_scalar(x, name, lambda v: v > 0, "> 0")


def check_nonnegative_scalar(x: Any, name: str) -> None:
    """Raise if a concrete `x` is not a scalar >= 0."""
    _check_scalar(x, name, lambda v: v >= 0, ">= 0")


def check_negative_scalar(x: Any, name: str) -> None:
    """Raise if a concrete `x` is not a scalar < 0 (a log weight of something forbidden)."""
    _check_scalar(x, name, lambda v: v < 0, "< 0 (a log weight near log 0, e.g. -1e5)")


def logits_and_paddings(logits: Any, logit_paddings: Any) -> tuple[jax.Array, jax.Array]:
    """Validated `(B, T, K)` logits with T, K >= 1 and their `(B, T)` paddings."""
    logits = as_float_array(logits, "logits", 3, "(B, T, K)")
    batch, frames, classes = logits.shape
    if frames == 0 or classes == 0:
        raise ValueError(f"`logits` must have T >= 1 frames and K >= 1 classes, got {logits.shape}.")
    logit_paddings = as_float_array(logit_paddings, "logit_paddings", 2, "(B, T)")
    check_shape(logit_paddings, "logit_paddings", (batch, frames), "(B, T)")
    return logits, logit_paddings

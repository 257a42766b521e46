"""Argument validation shared by the public functions.

Everything that can be decided from shapes and static values raises a
ValueError naming the argument; traced values (gamma, lengths under jit or
vmap) are checked where they are concrete and clipped into range otherwise.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def _concrete(x: Any) -> Any | None:
    """The Python/NumPy value of x, or None if x is traced."""
    if isinstance(x, jax.core.Tracer):
        return None
    try:
        return np.asarray(x)
    except Exception:  # pragma: no cover - exotic array types
        return None


def as_cost_matrix(C: Any, name: str = "C") -> jax.Array:
    """C as a floating (N, M) array, computed in at least float32."""
    C = jnp.asarray(C)
    if C.ndim != 2:
        raise ValueError(
            f"`{name}` must be a cost matrix of shape (N, M), got shape {C.shape}; "
            "use jax.vmap for batches."
        )
    if C.shape[0] == 0 or C.shape[1] == 0:
        raise ValueError(f"`{name}` must be non-empty, got shape {C.shape}.")
    if not jnp.issubdtype(C.dtype, jnp.floating):
        C = C.astype(jnp.result_type(float))
    return C.astype(jnp.promote_types(C.dtype, jnp.float32))


def check_gamma(gamma: Any) -> None:
    value = _concrete(gamma)
    if value is None:
        return
    if value.ndim != 0:
        raise ValueError(f"`gamma` must be a scalar, got shape {value.shape}.")
    if not value > 0:
        raise ValueError(
            f"`gamma` must be > 0 for soft-DTW, got {float(value)}; use sdtw.dtw for gamma = 0."
        )
    if not np.isfinite(value):
        raise ValueError(f"`gamma` must be finite, got {float(value)}.")


def check_weights(weights: Any) -> tuple[float, float, float]:
    try:
        w = tuple(float(x) for x in weights)
    except TypeError as error:
        raise ValueError(f"`weights` must be three numbers, got {weights!r}.") from error
    if len(w) != 3 or not all(np.isfinite(x) and x > 0 for x in w):
        raise ValueError(
            "`weights` must be three finite positive numbers "
            f"(vertical, horizontal, diagonal), got {weights!r}."
        )
    return w


def end_indices(shape: tuple[int, int], lengths: Any, band: int | None) -> jax.Array:
    """(2,) int32 array (n, m): the sizes of the used top-left block of C."""
    n_max, m_max = shape
    if lengths is None:
        return jnp.array([n_max, m_max], jnp.int32)
    if isinstance(lengths, (tuple, list)) and len(lengths) == 2:
        # No dtype here: a float length must be refused below, not truncated.
        lengths = jnp.stack([jnp.asarray(x) for x in lengths])
    lengths = jnp.asarray(lengths)
    if lengths.shape != (2,) or not jnp.issubdtype(lengths.dtype, jnp.integer):
        raise ValueError(f"`lengths` must be two ints (n, m), got {lengths!r}.")
    value = _concrete(lengths)
    if value is not None:
        n, m = (int(x) for x in value)
        if not (1 <= n <= n_max and 1 <= m <= m_max):
            raise ValueError(
                f"`lengths` = ({n}, {m}) out of range for a cost matrix of shape {shape}: "
                f"need 1 <= n <= {n_max} and 1 <= m <= {m_max}."
            )
        if band is not None and abs(n - m) > band:
            raise ValueError(
                f"`band` = {band} admits no alignment for `lengths` = ({n}, {m}): "
                f"it must be at least |n - m| = {abs(n - m)}."
            )
    # Traced lengths cannot be checked; clip them into range instead.
    return jnp.clip(lengths.astype(jnp.int32), 1, jnp.array([n_max, m_max], jnp.int32))


def admissible_cells(
    shape: tuple[int, int], band: int | None, mask: Any, subsequence: bool
) -> jax.Array | None:
    """Boolean (N, M) of admissible cells, or None when every cell is."""
    n, m = shape
    allowed = None
    if band is not None:
        if subsequence:
            raise ValueError("`band` is not defined for subsequence alignment; use `mask`.")
        if isinstance(band, bool) or not isinstance(band, (int, np.integer)) or band < 0:
            raise ValueError(f"`band` must be a non-negative int, got {band!r}.")
        if abs(n - m) > band:
            raise ValueError(
                f"`band` = {band} admits no alignment of a ({n}, {m}) cost matrix: "
                f"it must be at least |N - M| = {abs(n - m)}."
            )
        rows, cols = np.indices(shape)
        allowed = jnp.asarray(np.abs(rows - cols) <= band)
    if mask is not None:
        mask = jnp.asarray(mask)
        if mask.shape != (n, m):
            raise ValueError(f"`mask` must have the shape of C, {(n, m)}, got {mask.shape}.")
        if mask.dtype != jnp.bool_:
            raise ValueError(f"`mask` must be boolean, got dtype {mask.dtype}.")
        allowed = mask if allowed is None else allowed & mask
    return allowed

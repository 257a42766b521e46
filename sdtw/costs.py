"""Pairwise cost matrices: two sequences (N, D) and (M, D) -> costs (N, M).

Every function is pure JAX and differentiable in both arguments; any function
with this signature can be used as a soft-DTW cost.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def _check_pair(x: jax.Array, y: jax.Array) -> tuple[jax.Array, jax.Array]:
    x, y = jnp.asarray(x), jnp.asarray(y)
    if x.ndim != 2 or y.ndim != 2:
        raise ValueError(
            f"`x` and `y` must be sequences of shape (N, D) and (M, D), got {x.shape} and {y.shape}."
        )
    if x.shape[1] != y.shape[1]:
        raise ValueError(
            f"`x` and `y` must have the same feature size D, got {x.shape[1]} and {y.shape[1]}."
        )
    dtype = jnp.promote_types(jnp.result_type(x, y), jnp.float32)
    return x.astype(dtype), y.astype(dtype)


@jax.custom_jvp
def _clip_rounding(distances: jax.Array) -> jax.Array:
    """``max(distances, 0)`` with the derivative of the exact distances (1).

    The clip only removes rounding below 0, so the true derivative is that of the unclipped
    expression; and the backward pass then needs no (N, M) mask of clipped cells, which
    would keep a cost-sized buffer alive through the whole soft-DTW backward sweep.
    """
    return jnp.maximum(distances, 0.0)


@_clip_rounding.defjvp
def _clip_rounding_jvp(primals, tangents):
    return _clip_rounding(primals[0]), tangents[0]


def squared_euclidean(x: jax.Array, y: jax.Array) -> jax.Array:
    """C(i, j) = ||x_i - y_j||^2, clipped at 0 against rounding.

    Args:
      x: (N, D) sequence. y: (M, D) sequence.

    Returns:
      (N, M) costs.
    """
    x, y = _check_pair(x, y)
    sq_x = jnp.sum(x * x, axis=1)[:, None]
    sq_y = jnp.sum(y * y, axis=1)[None, :]
    return _clip_rounding(sq_x + sq_y - 2.0 * (x @ y.T))


def cosine(x: jax.Array, y: jax.Array, *, eps: float = 1e-8) -> jax.Array:
    """Cosine distance C(i, j) = 1 - <x_i, y_j> / (||x_i|| ||y_j||), in [0, 2].

    The usual cost for chroma features (Müller, "Fundamentals of Music
    Processing", Sec. 3.1.2). All-zero frames (silence) get distance 1 to
    everything rather than NaN.

    Args:
      x: (N, D) sequence. y: (M, D) sequence.
      eps: floor of the norms.

    Returns:
      (N, M) costs.
    """
    x, y = _check_pair(x, y)
    x_unit = x / jnp.maximum(jnp.linalg.norm(x, axis=1, keepdims=True), eps)
    y_unit = y / jnp.maximum(jnp.linalg.norm(y, axis=1, keepdims=True), eps)
    return 1.0 - x_unit @ y_unit.T


def negative_dot(x: jax.Array, y: jax.Array) -> jax.Array:
    """C(i, j) = -<x_i, y_j> (for normalized features or log-probabilities).

    Args:
      x: (N, D) sequence. y: (M, D) sequence.

    Returns:
      (N, M) costs (may be negative).
    """
    x, y = _check_pair(x, y)
    return -(x @ y.T)


def binary_cross_entropy(probs: jax.Array, targets: jax.Array, *, eps: float = 1e-7) -> jax.Array:
    """C(i, j) = -sum_k [y_jk log p_ik + (1 - y_jk) log(1 - p_ik)].

    Predicted multi-label probabilities against (multi-hot) target frames, as
    in the soft-DTW training of multi-pitch estimators (Krause, Weiß & Müller,
    "Soft dynamic time warping for multi-pitch estimation and beyond",
    ICASSP 2023).

    Args:
      probs: (N, K) predicted probabilities in [0, 1].
      targets: (M, K) targets in [0, 1] (usually multi-hot).
      eps: probabilities are clipped to [eps, 1 - eps].

    Returns:
      (N, M) costs.
    """
    probs, targets = _check_pair(probs, targets)
    p = jnp.clip(probs, eps, 1.0 - eps)
    return -(jnp.log(p) @ targets.T + jnp.log1p(-p) @ (1.0 - targets).T)


def binary_cross_entropy_with_logits(logits: jax.Array, targets: jax.Array) -> jax.Array:
    """:func:`binary_cross_entropy` from logits (numerically stable, no clipping).

    Args:
      logits: (N, K) pre-sigmoid scores.
      targets: (M, K) targets in [0, 1].

    Returns:
      (N, M) costs.
    """
    logits, targets = _check_pair(logits, targets)
    # log sigmoid(z) = -softplus(-z), log(1 - sigmoid(z)) = -softplus(z)
    return jax.nn.softplus(-logits) @ targets.T + jax.nn.softplus(logits) @ (1.0 - targets).T

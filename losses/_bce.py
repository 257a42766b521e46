"""Frame-wise binary cross-entropy for strongly aligned multi-hot targets."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from losses import _checks


def _elementwise_bce(logits: jax.Array, targets: jax.Array) -> jax.Array:
    """-[y log sigmoid(z) + (1 - y) log sigmoid(-z)], stable for any z.

    Written as max(z, 0) - z y + log(1 + exp(-|z|)) so that no exp
    overflows and no log sees 0.
    """
    return jnp.maximum(logits, 0) - logits * targets + jnp.log1p(jnp.exp(-jnp.abs(logits)))


def bce_loss(
    logits: jax.typing.ArrayLike,
    targets: jax.typing.ArrayLike,
    *,
    paddings: jax.typing.ArrayLike | None = None,
    mask: jax.typing.ArrayLike | None = None,
) -> jax.Array:
    """Sigmoid binary cross-entropy from logits, averaged per sequence.

    The strongly aligned baseline of chroma and multi-pitch training: every
    frame has its own multi-hot target.

    Args:
      logits: `(B, T, K)` array, B batch, T frames, K classes.
      targets: `(B, T, K)` array of target probabilities in [0, 1]
        (multi-hot for hard targets).
      paddings: optional `(B, T)` array, 1.0 where a frame is padded; padded
        frames do not count.
      mask: optional `(B, T, K)` bool array, False where an entry does not
        count (combined with `paddings`).

    Returns:
      `(B,)` array: mean binary cross-entropy over the counted frames and
      classes of each sequence (0 where nothing counts).
    """
    logits = _checks.as_float_array(logits, "logits", 3, "(B, T, K)")
    targets = _checks.as_float_array(targets, "targets", 3, "(B, T, K)")
    _checks.check_shape(targets, "targets", logits.shape, "(B, T, K)")
    values = _checks.concrete_value(targets)
    if values is not None and not np.all((values >= 0) & (values <= 1)):
        raise ValueError("`targets` must lie in [0, 1].")
    weights = jnp.ones(logits.shape, logits.dtype)
    if paddings is not None:
        paddings = _checks.as_float_array(paddings, "paddings", 2, "(B, T)")
        _checks.check_shape(paddings, "paddings", logits.shape[:2], "(B, T)")
        _checks.check_paddings(paddings, "paddings")
        weights = weights * (1.0 - paddings)[:, :, None]
    if mask is not None:
        mask = jnp.asarray(mask)
        _checks.check_shape(mask, "mask", logits.shape, "(B, T, K)")
        weights = weights * mask.astype(logits.dtype)
    total = jnp.sum(weights * _elementwise_bce(logits, targets), axis=(1, 2))
    count = jnp.sum(weights, axis=(1, 2))
    return total / jnp.maximum(count, 1.0)

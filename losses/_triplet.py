"""Triplet losses for embedding learning (shingle embedder).

A triplet (anchor, positive, negative) is penalised unless the positive is
closer to the anchor than the negative by at least `margin`:

    max(0, d(anchor, positive) - d(anchor, negative) + margin),

with d the Euclidean distance (or its square). Zalkow & Müller (2020) train
low-dimensional embeddings of chroma shingles this way, positives being
shingles of the same musical passage in another version.

References:
  Schroff, Kalenichenko, Philbin, FaceNet, CVPR 2015 (semi-hard mining).
  Hermans, Beyer, Leibe, In defense of the triplet loss, 2017 (batch hard).
  Zalkow, Müller, Learning low-dimensional embeddings of audio shingles for
  cross-version retrieval of classical music, Applied Sciences 10(1), 2020.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from losses import _checks

MINING_STRATEGIES = ("hard", "semi-hard", "all")


def _safe_sqrt(x: jax.Array) -> jax.Array:
    """sqrt with a zero (not NaN) gradient at x = 0, for coincident points; NaN stays NaN.

    (A NaN distance mapped to 0 would hide NaN embeddings behind a finite loss of `margin`.)
    """
    positive = x > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, x, 1.0)), jnp.where(jnp.isnan(x), x, 0.0))


def _distance(squared_distance: jax.Array, squared: bool) -> jax.Array:
    return squared_distance if squared else _safe_sqrt(squared_distance)


def triplet_loss(
    anchor: jax.typing.ArrayLike,
    positive: jax.typing.ArrayLike,
    negative: jax.typing.ArrayLike,
    *,
    margin: float,
    squared: bool = False,
) -> jax.Array:
    """Triplet margin loss of given triplets.

    Args:
      anchor: `(B, D)` array of B embeddings of dimension D.
      positive: `(B, D)` array, embeddings that should be close to `anchor`.
      negative: `(B, D)` array, embeddings that should be far from `anchor`.
      margin: required gap between the two distances (>= 0).
      squared: use squared Euclidean distances.

    Returns:
      `(B,)` array, max(0, d(anchor, positive) - d(anchor, negative) + margin).
    """
    anchor = _checks.as_float_array(anchor, "anchor", 2, "(B, D)")
    positive = _checks.as_float_array(positive, "positive", 2, "(B, D)")
    negative = _checks.as_float_array(negative, "negative", 2, "(B, D)")
    _checks.check_shape(positive, "positive", anchor.shape, "(B, D)")
    _checks.check_shape(negative, "negative", anchor.shape, "(B, D)")
    _checks.check_nonnegative_scalar(margin, "margin")
    d_positive = _distance(jnp.sum((anchor - positive) ** 2, axis=-1), squared)
    d_negative = _distance(jnp.sum((anchor - negative) ** 2, axis=-1), squared)
    return jnp.maximum(d_positive - d_negative + margin, 0.0)


def _pairwise_squared_distances(embeddings: jax.Array) -> jax.Array:
    """`(B, B)` squared Euclidean distances, exactly 0 on the diagonal.

    By differences rather than the Gram-matrix expansion, which cancels
    catastrophically for nearby points; B is a batch, so B^2 D is small.
    """
    difference = embeddings[:, None, :] - embeddings[None, :, :]
    return jnp.sum(difference**2, axis=-1)


def batch_triplet_loss(
    embeddings: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    *,
    margin: float,
    mining: str = "hard",
    squared: bool = False,
    groups: jax.typing.ArrayLike | None = None,
) -> jax.Array:
    """Triplet loss with triplets mined inside the batch.

    Every example serves as an anchor; its positives are the other examples
    with the same label, its negatives the examples with another label (and,
    given `groups`, of another group).

    * `"hard"` (batch hard, Hermans et al. 2017): the farthest positive
      against the nearest negative, one triplet per anchor.
    * `"semi-hard"` (Schroff et al. 2015): for each positive, the nearest
      negative farther than the positive (d_an > d_ap); if there is none,
      the farthest negative. Averaged over the anchor's positives.
    * `"all"`: every (positive, negative) pair, averaged over the anchor's
      triplets.

    Args:
      embeddings: `(B, D)` array of B embeddings of dimension D.
      labels: `(B,)` int array, examples with equal labels are positives.
      margin: required gap between positive and negative distance (>= 0).
      mining: one of "hard", "semi-hard", "all".
      squared: use squared Euclidean distances.
      groups: optional `(B,)` int array. Two examples of one group with
        different labels are neither positives nor negatives: with label =
        passage and group = piece (Zalkow & Müller 2020), the same passage
        in another version is pulled close, other pieces are pushed away,
        and the overlapping neighbouring passages of the piece are left alone.

    Returns:
      `(B,)` array, the loss of each anchor; 0 for an anchor without a
      positive or without a negative in the batch.
    """
    embeddings = _checks.as_float_array(embeddings, "embeddings", 2, "(B, D)")
    labels = _checks.as_int_array(labels, "labels", 1, "(B,)")
    _checks.check_shape(labels, "labels", embeddings.shape[:1], "(B,)")
    _checks.check_nonnegative_scalar(margin, "margin")
    if mining not in MINING_STRATEGIES:
        raise ValueError(f"`mining` must be one of {MINING_STRATEGIES}, got {mining!r}.")
    distance = _distance(_pairwise_squared_distances(embeddings), squared)
    same = labels[:, None] == labels[None, :]
    is_positive = same & ~jnp.eye(labels.shape[0], dtype=bool)
    is_negative = ~same
    if groups is not None:
        groups = _checks.as_int_array(groups, "groups", 1, "(B,)")
        _checks.check_shape(groups, "groups", labels.shape, "(B,)")
        is_negative &= groups[:, None] != groups[None, :]
    if mining == "hard":
        return _batch_hard(distance, is_positive, is_negative, margin)
    if mining == "semi-hard":
        return _batch_semi_hard(distance, is_positive, is_negative, margin)
    return _batch_all(distance, is_positive, is_negative, margin)


def _batch_hard(distance, is_positive, is_negative, margin):
    farthest_positive = jnp.max(jnp.where(is_positive, distance, -jnp.inf), axis=1)
    nearest_negative = jnp.min(jnp.where(is_negative, distance, jnp.inf), axis=1)
    has_triplet = jnp.any(is_positive, axis=1) & jnp.any(is_negative, axis=1)
    loss = jnp.maximum(farthest_positive - nearest_negative + margin, 0.0)
    return jnp.where(has_triplet, loss, 0.0)


def _batch_semi_hard(distance, is_positive, is_negative, margin):
    # [anchor, positive, negative] views of the (B, B) distances.
    d_ap = distance[:, :, None]
    d_an = distance[:, None, :]
    negative = is_negative[:, None, :]
    farther = negative & (d_an > d_ap)
    nearest_farther = jnp.min(jnp.where(farther, d_an, jnp.inf), axis=2)
    farthest = jnp.max(jnp.where(negative, d_an, -jnp.inf), axis=2)
    chosen = jnp.where(jnp.any(farther, axis=2), nearest_farther, farthest)
    has_negative = jnp.any(is_negative, axis=1)[:, None]
    use = is_positive & has_negative
    loss = jnp.where(use, jnp.maximum(distance - chosen + margin, 0.0), 0.0)
    return jnp.sum(loss, axis=1) / jnp.maximum(jnp.sum(use, axis=1), 1)


def _batch_all(distance, is_positive, is_negative, margin):
    valid = is_positive[:, :, None] & is_negative[:, None, :]
    hinge = jnp.maximum(distance[:, :, None] - distance[:, None, :] + margin, 0.0)
    loss = jnp.where(valid, hinge, 0.0)
    return jnp.sum(loss, axis=(1, 2)) / jnp.maximum(jnp.sum(valid, axis=(1, 2)), 1)

"""Soft-DTW losses between predicted frame sequences and weakly aligned targets.

Krause, Weiß & Müller (2023) train multi-pitch estimators from score
sequences that are only weakly aligned to the audio: the loss is soft-DTW
(Cuturi & Blondel 2017) between the network's frame-wise predictions
`(T, K)` and the target sequence `(L, K)` of score events, with a frame-wise
cost such as binary cross-entropy; its gradient w.r.t. the cost matrix is
the expected alignment, computed by `sdtw`'s custom VJP. The divergence
variant (Blondel, Mensch & Vert 2021) subtracts the self-similarity terms,
removing soft-DTW's entropic bias so that the loss of a perfect prediction
is 0.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

import sdtw
from losses import _checks

NORMALIZATIONS = (None, "pred_length", "total_length")


def _as_lengths(lengths, name: str, batch: int, maximum: int) -> jax.Array:
    """`(B,)` int32 lengths in [1, maximum]; None means all `maximum` frames."""
    if lengths is None:
        return jnp.full((batch,), maximum, jnp.int32)
    lengths = _checks.as_int_array(lengths, name, 1, "(B,)")
    _checks.check_shape(lengths, name, (batch,), "(B,)")
    value = _checks.concrete_value(lengths)
    if value is not None and not np.all((value >= 1) & (value <= maximum)):
        raise ValueError(f"`{name}` must lie in [1, {maximum}], got {value.tolist()}.")
    return lengths.astype(jnp.int32)


def soft_dtw_loss(
    pred: jax.typing.ArrayLike,
    target: jax.typing.ArrayLike,
    *,
    gamma: float,
    cost: Callable[[jax.Array, jax.Array], jax.Array] = sdtw.costs.squared_euclidean,
    pred_lengths: jax.typing.ArrayLike | None = None,
    target_lengths: jax.typing.ArrayLike | None = None,
    normalize: str | None = None,
    divergence: bool = False,
    band: int | None = None,
    weights: tuple[float, float, float] = (1.0, 1.0, 1.0),
) -> jax.Array:
    """Soft-DTW between predicted and target sequences, per example.

    Args:
      pred: `(B, T, K)` array, B batch, T frames, K features (e.g. pitch
        logits or probabilities, chroma).
      target: `(B, L, K)` array of L target frames (e.g. multi-hot pitch
        sets of consecutive score events), without timing.
      gamma: soft-minimum temperature, > 0.
      cost: pairwise frame cost `(N, K), (M, K) -> (N, M)` applied as
        `cost(pred[b], target[b])`: any function of `sdtw.costs` or a
        callable with that signature. For multi-pitch logits use
        `sdtw.costs.binary_cross_entropy_with_logits` (Krause et al. 2023).
      pred_lengths: optional `(B,)` int number of valid frames of each
        prediction (right padding); default T. May be traced.
      target_lengths: optional `(B,)` int number of valid target frames;
        default L. May be traced.
      normalize: None (the soft-DTW value), "pred_length" (divided by the
        valid prediction length) or "total_length" (divided by the valid
        prediction plus target length, the longest warping path), to
        compare sequences of different lengths.
      divergence: use the soft-DTW divergence
        `SDTW(pred, target) - (SDTW(pred, pred) + SDTW(target, target)) / 2`,
        which is 0 for pred == target and >= 0 for squared-Euclidean-like
        costs. The cost must then accept pairs of predictions and pairs of
        targets as well.
      band: optional Sakoe-Chiba radius, see `sdtw.soft_dtw`.
      weights: step weights (vertical, horizontal, diagonal), see
        `sdtw.soft_dtw`.

    Returns:
      `(B,)` array of losses. Gradients flow to `pred` and `target` through
      `sdtw`'s expected-alignment VJP; zero beyond the valid lengths.

    References:
      Krause, Weiß, Müller, Soft dynamic time warping for multi-pitch
      estimation and beyond, ICASSP 2023. Cuturi, Blondel, Soft-DTW: a
      differentiable loss function for time-series, ICML 2017. Blondel,
      Mensch, Vert, Differentiable divergences between time series,
      AISTATS 2021.
    """
    pred = _checks.as_float_array(pred, "pred", 3, "(B, T, K)")
    target = _checks.as_float_array(target, "target", 3, "(B, L, K)")
    batch, frames, features = pred.shape
    if target.shape[0] != batch or target.shape[2] != features:
        raise ValueError(
            f"`target` must have shape (B, L, K) with B = {batch} and K = {features}, "
            f"got {target.shape}."
        )
    if frames == 0 or target.shape[1] == 0:
        raise ValueError(f"`pred` and `target` must be non-empty, got {pred.shape}, {target.shape}.")
    _checks.check_positive_scalar(gamma, "gamma")
    if not callable(cost):
        raise ValueError(f"`cost` must be callable (x (N, K), y (M, K)) -> (N, M), got {cost!r}.")
    if normalize not in NORMALIZATIONS:
        raise ValueError(f"`normalize` must be one of {NORMALIZATIONS}, got {normalize!r}.")
    cost_shape = jax.eval_shape(cost, pred[0], target[0]).shape
    if cost_shape != (frames, target.shape[1]):
        raise ValueError(f"`cost` must return an (N, M) = {(frames, target.shape[1])} matrix for one example "
                         f"(pred[b] {pred.shape[1:]}, target[b] {target.shape[1:]}), got shape {cost_shape}.")
    pred_lengths = _as_lengths(pred_lengths, "pred_lengths", batch, frames)
    target_lengths = _as_lengths(target_lengths, "target_lengths", batch, target.shape[1])
    options = dict(band=band, weights=weights)

    def one_example(x, y, n, m):
        if divergence:
            return sdtw.divergence(x, y, gamma, cost=cost, lengths=(n, m), **options)
        return sdtw.soft_dtw(cost(x, y), gamma, lengths=(n, m), **options)

    values = jax.vmap(one_example)(pred, target, pred_lengths, target_lengths)
    if normalize == "pred_length":
        values = values / pred_lengths.astype(values.dtype)
    elif normalize == "total_length":
        values = values / (pred_lengths + target_lengths).astype(values.dtype)
    return values

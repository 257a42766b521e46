"""The differentiable DTW value: custom VJP over the wavefront sweeps.

``alignment_value(rec, cost, gamma, ends)`` is the soft (or hard) minimum over
admissible alignments that end at (n-1, m-1) (or anywhere in row n-1 up to
column m-1 for subsequence alignment). Its VJP runs the adjoint sweep of
:mod:`sdtw._wavefront` on the saved table: the gradient w.r.t. the costs is the
expected alignment, in O(NM) time and memory, with no autodiff through the
forward loop. The gradient w.r.t. gamma is exact too:
d value / d gamma = (value - <grad, C>) / gamma, because every alignment's cost
is linear in C.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from sdtw import _wavefront
from sdtw._wavefront import BIG, Recursion


def _oriented(cost, ends, rec: Recursion):
    """Transpose tall matrices: the loop then runs on diagonals of length min(N, M).

    Soft-DTW of C with weights (w_v, w_h, w_d) equals soft-DTW of C.T with
    (w_h, w_v, w_d); subsequence alignment is not symmetric and is left alone.
    """
    n, m = cost.shape
    if rec.subsequence or n <= m:
        return cost, ends, rec, False
    return cost.T, ends[::-1], rec.transposed(), True


def _unreachable_threshold(rec: Recursion) -> float:
    return 0.5 * BIG * min(1.0, *rec.weights)


def _end_value(row_values, ends, m, inv_gamma, rec: Recursion):
    """Value, and seeds d value / d R(n-1, j) for the M columns j, from the (K,)
    values R(n-1, k - n + 1) of every anti-diagonal k."""
    end_row, end_col = ends[0] - 1, ends[1] - 1
    cols = jnp.arange(m)
    if not rec.subsequence:
        return row_values[end_row + end_col], (cols == end_col).astype(row_values.dtype)
    last_row = jax.lax.dynamic_slice_in_dim(row_values, end_row, m)
    candidates = jnp.where(cols <= end_col, last_row, BIG)
    low = jnp.min(candidates)
    if rec.hard:
        return low, (cols == jnp.argmin(candidates)).astype(row_values.dtype)
    weights = jnp.exp((low - candidates) * inv_gamma)
    total = jnp.sum(weights)
    return low - jnp.log(total) / inv_gamma, weights / total


def _sweep(rec: Recursion, cost, gamma, ends, keep_table):
    oriented, ends, rec_o, transposed = _oriented(cost, ends, rec)
    inv_gamma = 1.0 / gamma
    folded = _wavefront.fold(oriented)
    table, row_values = _wavefront.forward(folded, inv_gamma, ends[0] - 1, rec_o, keep_table=keep_table)
    value, seeds = _end_value(row_values, ends, oriented.shape[1], inv_gamma, rec_o)
    reachable = ~(value >= _unreachable_threshold(rec))  # NaN costs stay NaN
    value = jnp.where(reachable, value, jnp.inf)
    seeds = jnp.where(reachable, seeds, 0.0)
    return value, (folded, table, seeds, ends, inv_gamma, value, reachable, transposed)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def alignment_value(rec: Recursion, cost, gamma, ends):
    """Soft/hard DTW value of one cost matrix.

    Args:
      rec: static recursion description.
      cost: (N, M) float costs, BIG at inadmissible cells.
      gamma: scalar smoothing (> 0; unused when ``rec.hard``).
      ends: (2,) int32 (n, m), the used top-left block.

    Returns:
      Scalar value, +inf when no admissible alignment exists.
    """
    # Without differentiation no table is stored.
    return _sweep(rec, cost, gamma, ends, keep_table=False)[0]


def _fwd(rec, cost, gamma, ends):
    value, residuals = _sweep(rec, cost, gamma, ends, keep_table=True)
    return value, (residuals, gamma)


def _bwd(rec, saved, cotangent):
    (folded, table, seeds, ends, inv_gamma, value, reachable, transposed), gamma = saved
    rec_o = rec.transposed() if transposed else rec
    folded_grad = _wavefront.backward(folded, table, inv_gamma, ends[0] - 1, seeds, rec_o)
    grad = _wavefront.unfold(folded_grad)
    if transposed:
        grad = grad.T
    if rec.hard:
        gamma_grad = jnp.zeros_like(gamma)
    else:
        # Inadmissible cells hold BIG where the gradient is exactly 0.
        expected_cost = jnp.sum(folded_grad * folded)
        gamma_grad = jnp.where(reachable, (value - expected_cost) * inv_gamma, 0.0)
        gamma_grad = (cotangent * gamma_grad).astype(jnp.result_type(gamma))
    return cotangent * grad, gamma_grad, None


alignment_value.defvjp(_fwd, _bwd)


def subsequence_matching(rec: Recursion, cost, ends):
    """Hard subsequence DTW over the used block: (M,) values R(n-1, j) (+inf
    for j >= m or unreachable) and (M,) start columns of their alignments."""
    m = cost.shape[1]
    end_row = ends[0] - 1
    values, origins = _wavefront.subsequence_ends(_wavefront.fold(cost), end_row, rec)
    values = jax.lax.dynamic_slice_in_dim(values, end_row, m)
    origins = jax.lax.dynamic_slice_in_dim(origins, end_row, m)
    valid = (jnp.arange(m) < ends[1]) & (values < _unreachable_threshold(rec))
    return jnp.where(valid, values, jnp.inf), origins

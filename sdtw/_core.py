"""The differentiable DTW value: custom VJP over the wavefront sweeps.

``alignment_value(rec, shape, cost, gamma, ends)`` is the soft (or hard)
minimum over admissible alignments that end at (n-1, m-1) (or anywhere in row
n-1 up to column m-1 for subsequence alignment). Its VJP runs the adjoint
sweep of :mod:`sdtw._wavefront` on the step probabilities saved by the
forward sweep: the gradient w.r.t. the costs is the
expected alignment, in O(NM) time and memory, with no autodiff through the
forward loop. The gradient w.r.t. gamma is exact too:
d value / d gamma = (value - <grad, C>) / gamma, because every alignment's cost
is linear in C.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp

from sdtw import _wavefront
from sdtw._wavefront import INF, Recursion


@dataclasses.dataclass(frozen=True)
class _Geometry:
    """How an (N, M) problem is laid out for the sweeps (all static).

    Tall matrices are transposed, so the loop runs on anti-diagonals of length
    min(N, M): soft-DTW of C with weights (w_v, w_h, w_d) equals soft-DTW of
    C.T with (w_h, w_v, w_d). Subsequence alignment is not symmetric and is
    left alone. A single column is padded with an inadmissible one (the
    anti-diagonal layout needs M >= 2).
    """

    rec: Recursion
    transposed: bool
    layout: _wavefront.Diagonals
    cols: int  # M of the oriented problem, before padding

    @classmethod
    def of(cls, rec: Recursion, shape: tuple[int, int]) -> "_Geometry":
        n, m = shape
        transposed = not rec.subsequence and n > m
        if transposed:
            n, m, rec = m, n, rec.transposed()
        return cls(rec, transposed, _wavefront.Diagonals(n, max(m, 2)), m)

    def pack(self, table):
        """(N, M) -> the packed oriented table."""
        if self.transposed:
            table = table.T
        if self.cols == 1:
            table = jnp.concatenate([table, jnp.full_like(table, INF)], axis=1)
        return self.layout.pack(table)

    def unpack(self, packed):
        """Inverse of :meth:`pack`."""
        table = self.layout.unpack(packed)[:, : self.cols]
        return table.T if self.transposed else table

    def orient(self, ends):
        """(n, m) of the oriented problem."""
        return ends[::-1] if self.transposed else ends


def end_of_row(last_row, end_col, inv_gamma, rec: Recursion):
    """Value, and seeds d value / d R(n-1, j), from the last used row.

    Args:
      last_row: (M,) values R(n-1, j); entries past ``end_col`` are ignored
        (they may hold anything, NaN included).
      end_col: scalar int, m - 1.
      inv_gamma: scalar 1 / gamma (unused when ``rec.hard``).

    Returns:
      (value, seeds): the scalar value, +inf when no admissible alignment
      exists, and (M,) seeds, zero then (NaN costs stay NaN).
    """
    cols = jnp.arange(last_row.shape[0])
    used = cols <= end_col
    if not rec.subsequence:
        value, seeds = last_row[end_col], (cols == end_col).astype(last_row.dtype)
    else:
        candidates = jnp.where(used, last_row, INF)
        low = jnp.min(candidates)
        if rec.hard:
            value, seeds = low, (cols == jnp.argmin(candidates)).astype(last_row.dtype)
        else:
            weights = jnp.exp((jnp.where(low == INF, 0.0, low) - candidates) * inv_gamma)
            total = jnp.sum(weights)
            value, seeds = low - jnp.log(total) / inv_gamma, weights / total
    reachable = value != INF
    return jnp.where(reachable, value, jnp.inf), jnp.where(reachable & used, seeds, 0.0)


def gamma_gradient(value, grad, cost, inv_gamma):
    """d value / d gamma = (value - <grad, C>) / gamma: every alignment's cost is linear in C.

    Inadmissible cells may hold +inf where ``grad`` is exactly 0; an
    unreachable end (value +inf) gives 0.
    """
    expected_cost = jnp.sum(jnp.where(grad != 0, grad * cost, 0.0))
    return jnp.where(value != INF, (value - expected_cost) * inv_gamma, 0.0)


def _sweep(rec: Recursion, shape, cost, gamma, ends, record):
    geometry = _Geometry.of(rec, shape)
    packed, ends = geometry.pack(cost), geometry.orient(ends)
    inv_gamma = 1.0 / gamma
    steps, row_values = _wavefront.forward(
        packed, geometry.layout, inv_gamma, ends[0] - 1, geometry.rec, record=record
    )
    last_row = jax.lax.dynamic_slice_in_dim(row_values, ends[0] - 1, geometry.cols)
    value, seeds = end_of_row(last_row, ends[1] - 1, inv_gamma, geometry.rec)
    return value, (packed, steps, seeds, ends, inv_gamma, value)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def alignment_value(rec: Recursion, shape: tuple[int, int], cost, gamma, ends):
    """Soft/hard DTW value of one cost matrix.

    Args:
      rec: static recursion description.
      shape: static (N, M), the shape of ``cost``.
      cost: (N, M) float costs, +inf at inadmissible cells.
      gamma: scalar smoothing (> 0; unused when ``rec.hard``).
      ends: (2,) int32 (n, m), the used top-left block.

    Returns:
      Scalar value, +inf when no admissible alignment exists.
    """
    # Without differentiation nothing is stored.
    return _sweep(rec, shape, cost, gamma, ends, record=None)[0]


def _fwd(rec, shape, cost, gamma, ends):
    value, residuals = _sweep(rec, shape, cost, gamma, ends, record="steps")
    return value, (residuals, gamma)


def _bwd(rec, shape, saved, cotangent):
    (packed, steps, seeds, ends, inv_gamma, value), gamma = saved
    geometry = _Geometry.of(rec, shape)
    packed_grad = _wavefront.backward(steps, geometry.layout, ends[0] - 1, seeds, geometry.rec)
    grad = geometry.unpack(packed_grad)
    if rec.hard:
        gamma_grad = jnp.zeros_like(gamma)
    else:
        gamma_grad = gamma_gradient(value, packed_grad, packed, inv_gamma)
        gamma_grad = (cotangent * gamma_grad).astype(jnp.result_type(gamma))
    return cotangent * grad, gamma_grad, None


alignment_value.defvjp(_fwd, _bwd)


def subsequence_matching(rec: Recursion, cost, ends):
    """Hard subsequence DTW over the used block: (M,) values R(n-1, j) (+inf
    for j >= m or unreachable) and (M,) start columns of their alignments."""
    m = cost.shape[1]
    end_row = ends[0] - 1
    geometry = _Geometry.of(rec, cost.shape)
    packed = geometry.pack(cost)
    values, origins = _wavefront.subsequence_ends(packed, geometry.layout, end_row, rec)
    values = jax.lax.dynamic_slice_in_dim(values, end_row, m)
    origins = jax.lax.dynamic_slice_in_dim(origins, end_row, m)
    return jnp.where(jnp.arange(m) < ends[1], values, INF), origins  # NaN costs stay NaN


def accumulated_table(rec: Recursion, cost, inv_gamma):
    """(N, M) accumulated costs R of every cell."""
    geometry = _Geometry.of(rec, cost.shape)
    table, _ = _wavefront.forward(geometry.pack(cost), geometry.layout, inv_gamma, 0, geometry.rec, record="table")
    return geometry.unpack(table)

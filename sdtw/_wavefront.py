"""Anti-diagonal wavefront for the DTW recursion and its adjoint.

The recursion (Cuturi & Blondel 2017, with step weights) is

    R(i, j) = softmin_gamma( R(i-1, j)   + w_v C(i, j),     vertical step
                             R(i, j-1)   + w_h C(i, j),     horizontal step
                             R(i-1, j-1) + w_d C(i, j) )    diagonal step

with a *start term* C(i, j) (weight 1) allowed at (0, 0), or at every (0, j)
for subsequence alignment. ``softmin_gamma(a) = -gamma log sum exp(-a / gamma)``
and gamma = 0 means the hard minimum.

Layout. Cell (i, j) lies on anti-diagonal k = i + j, and every cell of one
anti-diagonal depends only on the two anti-diagonals before it, so a whole
anti-diagonal is one vectorized step and the loop runs K = N + M - 1 steps.
Anti-diagonal k is held as a length-N vector indexed by the row i; in that
vector the predecessors of (i, j) sit at

    (i-1, j)   -> diagonal k-1, index i-1      (vertical)
    (i, j-1)   -> diagonal k-1, index i        (horizontal)
    (i-1, j-1) -> diagonal k-2, index i-1      (diagonal)

Tables are stored *folded*: ``F[r, i] = X[i, (r - i) mod M]``, shape (M, N).
Anti-diagonal k occupies row ``k mod M`` at its valid indices
``0 <= k - i < M``; the anti-diagonals that share a row have disjoint valid
indices, so the fold stores exactly N * M values (a plain skew would need
N * (N + M - 1), twice as many for square inputs).

Inadmissible cells hold ``BIG``, a huge finite number: exp(-BIG / gamma) is 0
exactly, and unlike +inf it never produces inf - inf = NaN.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from jax import lax

BIG = 1e30


@dataclasses.dataclass(frozen=True)
class Recursion:
    """Static description of the recursion (hashable, so it can be a jit static).

    Attributes:
      weights: (w_v, w_h, w_d), weights of the vertical, horizontal and
        diagonal steps; the cost C(i, j) of a cell entered by a step is
        multiplied by that step's weight.
      subsequence: if True, an alignment may start at any cell of row 0
        (and the caller soft-minimizes over the end cells of the last row).
      hard: if True, use the hard minimum (gamma = 0).
    """

    weights: tuple[float, float, float] = (1.0, 1.0, 1.0)
    subsequence: bool = False
    hard: bool = False

    def transposed(self) -> "Recursion":
        w_v, w_h, w_d = self.weights
        return dataclasses.replace(self, weights=(w_h, w_v, w_d))


# ----------------------------------------------------------------------------
# Folded layout.


def fold(x: jax.Array) -> jax.Array:
    """(N, M) -> (M, N) with ``F[r, i] = x[i, (r - i) mod M]``."""
    n, m = x.shape
    cols = (jnp.arange(m)[None, :] - jnp.arange(n)[:, None]) % m
    return jnp.take_along_axis(x, cols, axis=1).T


def unfold(f: jax.Array) -> jax.Array:
    """Inverse of :func:`fold`: (M, N) -> (N, M)."""
    m, n = f.shape
    rows = (jnp.arange(n)[:, None] + jnp.arange(m)[None, :]) % m
    return jnp.take_along_axis(f.T, rows, axis=1)


def _valid(k: jax.Array, n: int, m: int) -> jax.Array:
    """Boolean (N,): which indices of anti-diagonal k are cells of the table."""
    j = k - jnp.arange(n)
    return (j >= 0) & (j < m)


def _read_diagonal(table: jax.Array, k: jax.Array, big: jax.Array) -> jax.Array:
    """Anti-diagonal k of a folded table, BIG outside the table (also for k < 0)."""
    m, n = table.shape
    row = lax.dynamic_index_in_dim(table, k % m, axis=0, keepdims=False)
    return jnp.where(_valid(k, n, m), row, big)


def _write_diagonal(table: jax.Array, k: jax.Array, values: jax.Array) -> jax.Array:
    """Store anti-diagonal k into its row of a folded table, in place."""
    m, n = table.shape
    row = lax.dynamic_index_in_dim(table, k % m, axis=0, keepdims=False)
    row = jnp.where(_valid(k, n, m), values, row)
    return lax.dynamic_update_index_in_dim(table, row, k % m, axis=0)


# ----------------------------------------------------------------------------
# One anti-diagonal.


def _step_candidates(cost, prev1, prev2, start, weights, big):
    """Values of the three incoming steps of every cell of one anti-diagonal.

    Args:
      cost: (N,) costs of the cells of anti-diagonal k.
      prev1, prev2: (N,) accumulated costs of anti-diagonals k-1 and k-2.
      start: scalar, the start term of cell (0, k) (BIG where no start is allowed).

    Returns:
      (vertical, horizontal, diagonal), each (N,). Row 0 has no vertical
      predecessor; its vertical slot carries the start term instead.
    """
    w_v, w_h, w_d = weights
    vertical = jnp.concatenate([start[None], prev1[:-1] + w_v * cost[1:]])
    horizontal = prev1 + w_h * cost
    diagonal = jnp.concatenate([big[None], prev2[:-1] + w_d * cost[1:]])
    return vertical, horizontal, diagonal


def _sorted3(a, b, c):
    """Smallest, middle and largest of three arrays, elementwise."""
    low_ab, high_ab = jnp.minimum(a, b), jnp.maximum(a, b)
    low = jnp.minimum(low_ab, c)
    high = jnp.maximum(high_ab, c)
    middle = jnp.maximum(low_ab, jnp.minimum(high_ab, c))
    return low, middle, high


def _softmin(candidates, gamma, inv_gamma):
    """softmin_gamma over three (N,) arrays, shifted by the minimum (no overflow).

    The smallest term contributes exp(0) = 1, so two exponentials suffice.
    """
    low, middle, high = _sorted3(*candidates)
    total = 1.0 + jnp.exp((low - middle) * inv_gamma) + jnp.exp((low - high) * inv_gamma)
    return low - gamma * jnp.log(total)


def _softmin_weights(candidates, inv_gamma):
    """Probabilities of the three steps under the softmin (a softmax of -a/gamma).

    Recomputed from the candidates, not from R(i, j): for tiny gamma,
    (R - candidate) / gamma would amplify rounding errors of large R.
    """
    low, middle, high = _sorted3(*candidates)
    e_middle = jnp.exp((low - middle) * inv_gamma)
    e_high = jnp.exp((low - high) * inv_gamma)
    inv_total = 1.0 / (1.0 + e_middle + e_high)

    def weight(x):  # exp((low - x) / gamma) / total, exact for ties too
        return jnp.where(x == low, inv_total, jnp.where(x == middle, e_middle, e_high) * inv_total)

    return tuple(weight(x) for x in candidates)


def _argmin_weights(candidates):
    """One-hot of the minimal step; ties prefer diagonal, then vertical."""
    v, h, d = candidates
    take_d = d <= jnp.minimum(v, h)
    take_v = ~take_d & (v <= h)
    take_h = ~take_d & ~take_v
    dtype = v.dtype
    return take_v.astype(dtype), take_h.astype(dtype), take_d.astype(dtype)


def _start_terms(folded_cost: jax.Array, rec: Recursion, num_diagonals: int, big):
    """(K,) start term of cell (0, k): C(0, k) where an alignment may start."""
    m = folded_cost.shape[0]
    k = jnp.arange(num_diagonals)
    first_row = folded_cost[k % m, 0]  # C(0, k mod M)
    allowed = (k < m) if rec.subsequence else (k == 0)
    return jnp.where(allowed, first_row, big)


# ----------------------------------------------------------------------------
# Forward and backward sweeps (one example; vmap for batches).


def forward(folded_cost, inv_gamma, end_row, rec: Recursion, *, keep_table=True):
    """Run the recursion over all anti-diagonals.

    Args:
      folded_cost: (M, N) folded cost matrix (inadmissible cells hold BIG).
      inv_gamma: scalar 1 / gamma (ignored when ``rec.hard``).
      end_row: scalar int, the row whose accumulated costs are reported.
      keep_table: also return the folded table R (needed by the backward).

    Returns:
      (table, row_values): the folded table R (M, N) (or None) and the (K,)
      values R(end_row, k - end_row) per anti-diagonal k (BIG where invalid).
    """
    m, n = folded_cost.shape
    num_diagonals = n + m - 1
    dtype = folded_cost.dtype
    big = jnp.asarray(BIG, dtype)
    starts = _start_terms(folded_cost, rec, num_diagonals, big)
    fill = jnp.full((n,), big)

    def step(carry, k):
        prev1, prev2, table = carry
        cost = lax.dynamic_index_in_dim(folded_cost, k % m, axis=0, keepdims=False)
        candidates = _step_candidates(cost, prev1, prev2, starts[k], rec.weights, big)
        if rec.hard:
            value = jnp.minimum(jnp.minimum(candidates[0], candidates[1]), candidates[2])
        else:
            value = _softmin(candidates, 1.0 / inv_gamma, inv_gamma)
        value = jnp.where(_valid(k, n, m), value, big)
        if keep_table:
            table = _write_diagonal(table, k, value)
        return (value, prev1, table), value[end_row]

    table = jnp.full((m, n), big) if keep_table else jnp.zeros((), dtype)
    (_, _, table), row_values = lax.scan(
        step, (fill, fill, table), jnp.arange(num_diagonals)
    )
    return (table if keep_table else None), row_values


def backward(folded_cost, table, inv_gamma, end_row, end_seeds, rec: Recursion):
    """Adjoint sweep: gradient of the reported value w.r.t. every cost.

    With G(i, j) = d value / d R(i, j) (the expected alignment for unit
    weights), G(i, j) = sum over successors s of G(s) * P(step into s), and
    d value / d C(i, j) = G(i, j) * sum over steps t of P_t(i, j) * w_t.

    Args:
      folded_cost, table: (M, N) folded costs and accumulated costs.
      end_row: scalar int, row of the end cells.
      end_seeds: (K,) d value / d R(end_row, k - end_row) for every diagonal k.

    Returns:
      (M, N) folded gradient d value / d C.
    """
    m, n = folded_cost.shape
    num_diagonals = n + m - 1
    dtype = folded_cost.dtype
    big = jnp.asarray(BIG, dtype)
    starts = _start_terms(folded_cost, rec, num_diagonals, big)
    w_v, w_h, w_d = rec.weights
    rows = jnp.arange(n)
    # The vertical slot of row 0 is the start term, which has weight 1.
    vertical_weight = jnp.where(rows == 0, jnp.asarray(1.0, dtype), w_v)
    zeros = jnp.zeros((n,), dtype)

    def shift_up(x):  # x[i + 1], 0 past the end
        return jnp.concatenate([x[1:], zeros[:1]])

    def step(carry, k):
        # Flows out of diagonal k+1 (vertical, horizontal, diagonal steps)
        # and the diagonal flow out of diagonal k+2.
        flow_v, flow_h, flow_d1, flow_d2, grad = carry
        cost = lax.dynamic_index_in_dim(folded_cost, k % m, axis=0, keepdims=False)
        prev1 = _read_diagonal(table, k - 1, big)
        prev2 = _read_diagonal(table, k - 2, big)
        candidates = _step_candidates(cost, prev1, prev2, starts[k], rec.weights, big)
        if rec.hard:
            p_v, p_h, p_d = _argmin_weights(candidates)
        else:
            p_v, p_h, p_d = _softmin_weights(candidates, inv_gamma)
        seed = jnp.where(rows == end_row, end_seeds[k], 0.0).astype(dtype)
        adjoint = shift_up(flow_v) + flow_h + shift_up(flow_d2) + seed
        adjoint = jnp.where(_valid(k, n, m), adjoint, 0.0)
        cost_grad = adjoint * (vertical_weight * p_v + w_h * p_h + w_d * p_d)
        grad = _write_diagonal(grad, k, cost_grad)
        return (adjoint * p_v, adjoint * p_h, adjoint * p_d, flow_d1, grad), None

    init = (zeros, zeros, zeros, zeros, jnp.zeros((m, n), dtype))
    (*_, grad), _ = lax.scan(step, init, jnp.arange(num_diagonals), reverse=True)
    return grad


def track_starts(folded_cost, end_row, rec: Recursion):
    """Hard subsequence recursion that also propagates each cell's start column.

    Returns:
      (K,) int32: for the cell (end_row, k - end_row) of every diagonal k, the
      column of row 0 where its optimal alignment starts.
    """
    m, n = folded_cost.shape
    num_diagonals = n + m - 1
    big = jnp.asarray(BIG, folded_cost.dtype)
    starts = _start_terms(folded_cost, rec, num_diagonals, big)
    no_start = jnp.zeros((n,), jnp.int32)
    fill = jnp.full((n,), big)

    def step(carry, k):
        prev1, prev2, origin1, origin2 = carry
        cost = lax.dynamic_index_in_dim(folded_cost, k % m, axis=0, keepdims=False)
        candidates = _step_candidates(cost, prev1, prev2, starts[k], rec.weights, big)
        p_v, p_h, p_d = _argmin_weights(candidates)
        origin_v = jnp.concatenate([k[None].astype(jnp.int32), origin1[:-1]])
        origin_d = jnp.concatenate([no_start[:1], origin2[:-1]])
        origin = jnp.where(p_d > 0, origin_d, jnp.where(p_v > 0, origin_v, origin1))
        value = jnp.minimum(jnp.minimum(candidates[0], candidates[1]), candidates[2])
        value = jnp.where(_valid(k, n, m), value, big)
        return (value, prev1, origin, origin1), origin[end_row]

    _, origins = lax.scan(
        step, (fill, fill, no_start, no_start), jnp.arange(num_diagonals)
    )
    return origins

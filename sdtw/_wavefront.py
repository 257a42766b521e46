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

Storage. In a row-major (N, M) array, cell (i, k - i) of anti-diagonal k
sits at flat offset k + i (M - 1): an anti-diagonal is a run of constant
stride M - 1. Viewing the flat array as rows of length M - 1 and transposing
(:class:`Diagonals`) turns every anti-diagonal into a contiguous slice of one
row, so each step reads and writes contiguous memory, the layout costs one
transpose of the input (no gather), and tables hold N * M values plus a few
rows (a plain skew would need N * (N + M - 1), twice as many when square).

Inadmissible cells hold +inf, and so does every cell no admissible alignment
reaches. The soft minimum shifts by its smallest term, and by 0 where that
term is +inf itself, so inf - inf never arises: exp(-inf) is 0 exactly, an
unreachable cell gets +inf, and its step probabilities are only ever
multiplied by an adjoint of exactly 0. Large finite costs stay finite: only
a true +inf (or a sum beyond the float range) means "unreachable".
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from jax import lax

INF = float("inf")


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
# Storage of tables by anti-diagonals.


@dataclasses.dataclass(frozen=True)
class Diagonals:
    """Anti-diagonal access to (N, M) tables, M >= 2, stored as ``(M - 1, R)`` views.

    ``view[c, q] = flat(x)[q (M - 1) + c]``; anti-diagonal k is
    ``view[k mod (M-1), k div (M-1) + i]`` for rows i = 0 .. N-1. Entries of
    that slice that are no cells of anti-diagonal k belong to other
    anti-diagonals (or padding): reads mask them, writes leave them alone.
    """

    n: int
    m: int

    @property
    def stride(self) -> int:
        return self.m - 1

    @property
    def num_rows(self) -> int:
        """R: the last anti-diagonal starts at row (N + M - 2) div (M - 1)."""
        return (self.n + self.m - 2) // self.stride + self.n

    def pack(self, x: jax.Array) -> jax.Array:
        """(N, M) -> (M - 1, R) view."""
        flat = jnp.pad(x.reshape(-1), (0, self.num_rows * self.stride - x.size))
        return flat.reshape(self.num_rows, self.stride).T

    def unpack(self, view: jax.Array) -> jax.Array:
        """(M - 1, R) view -> (N, M)."""
        return view.T.reshape(-1)[: self.n * self.m].reshape(self.n, self.m)

    def full(self, value, dtype) -> jax.Array:
        return jnp.full((self.stride, self.num_rows), value, dtype)

    def valid(self, k: jax.Array) -> jax.Array:
        """(N,) which rows hold cells (i, k - i) of anti-diagonal k."""
        cols = k - jnp.arange(self.n)
        return (cols >= 0) & (cols < self.m)

    def _slice(self, view: jax.Array, k: jax.Array) -> jax.Array:
        # Negative k (k - 1, k - 2 at the start) is clamped; the mask hides it.
        return lax.dynamic_slice(view, (k % self.stride, k // self.stride), (1, self.n))[0]

    def read(self, view: jax.Array, k: jax.Array, fill) -> jax.Array:
        """Anti-diagonal k, (N,), ``fill`` where it has no cell."""
        return jnp.where(self.valid(k), self._slice(view, k), fill)

    def write(self, view: jax.Array, k: jax.Array, values: jax.Array) -> jax.Array:
        """Store the cells of anti-diagonal k (in place inside a loop)."""
        new = jnp.where(self.valid(k), values, self._slice(view, k))
        return lax.dynamic_update_slice(view, new[None], (k % self.stride, k // self.stride))


# ----------------------------------------------------------------------------
# One anti-diagonal.


def _candidates(cost, up, left, diag, k, rows, rec: Recursion):
    """Values of the three incoming steps of the cells ``rows`` of anti-diagonal k.

    Args:
      cost: (N,) costs of the cells.
      up, left, diag: (N,) accumulated costs of the vertical (i-1, j),
        horizontal (i, j-1) and diagonal (i-1, j-1) predecessors.
      k: the anti-diagonal; rows: (N,) the row indices.

    Returns:
      (vertical, horizontal, diagonal), each (N,). Row 0 has no vertical
      predecessor; where an alignment may start, its vertical slot carries
      the start term C(0, j) instead.
    """
    w_v, w_h, w_d = rec.weights
    vertical = up + w_v * cost
    vertical = jnp.where(_is_start(k, rows, rec), cost, vertical)
    return vertical, left + w_h * cost, diag + w_d * cost


def _is_start(k, rows, rec: Recursion):
    """Where an alignment may begin: (0, 0), or any (0, j) for subsequence alignment."""
    return (rows == 0) & (True if rec.subsequence else k == 0)


def _sorted3(a, b, c):
    """Smallest, middle and largest of three arrays, elementwise."""
    low_ab, high_ab = jnp.minimum(a, b), jnp.maximum(a, b)
    low = jnp.minimum(low_ab, c)
    high = jnp.maximum(high_ab, c)
    middle = jnp.maximum(low_ab, jnp.minimum(high_ab, c))
    return low, middle, high


def _soft_step(candidates, gamma, inv_gamma):
    """softmin_gamma of three (N,) arrays and the probabilities of the steps.

    Shifted by the minimum, so nothing overflows; the smallest term
    contributes exp(0) = 1, so two exponentials suffice. The probability of
    step t is exp((low - candidate_t) / gamma) / total, computed from the
    candidates themselves (exact for ties too).

    Returns:
      (value, (p_vertical, p_diagonal)); p_horizontal = 1 - p_v - p_d.
    """
    low, middle, high = _sorted3(*candidates)
    shift = jnp.where(low == INF, 0.0, low)  # all three +inf: exp(-inf) = 0, not exp(inf - inf) = NaN
    e_middle = jnp.exp((shift - middle) * inv_gamma)
    e_high = jnp.exp((shift - high) * inv_gamma)
    total = 1.0 + e_middle + e_high
    inv_total = 1.0 / total

    def probability(x):
        return jnp.where(x == low, 1.0, jnp.where(x == middle, e_middle, e_high)) * inv_total

    vertical, _, diagonal = candidates
    return low - gamma * jnp.log(total), (probability(vertical), probability(diagonal))


def _hard_step(candidates):
    """Minimum of three (N,) arrays and the one-hot choice (ties prefer diagonal, then vertical).

    Returns:
      (value, (p_vertical, p_diagonal)) as in :func:`_soft_step`.
    """
    v, h, d = candidates
    take_d = d <= jnp.minimum(v, h)
    take_v = ~take_d & (v <= h)
    value = jnp.minimum(jnp.minimum(v, h), d)
    return value, (take_v.astype(v.dtype), take_d.astype(v.dtype))


# ----------------------------------------------------------------------------
# Forward and backward sweeps (one example; vmap for batches).


def forward(costs, layout: Diagonals, inv_gamma, end_row, rec: Recursion, *, record: str | None = None):
    """Run the recursion over all anti-diagonals.

    Args:
      costs: the (N, M) cost matrix packed by ``layout`` (inadmissible cells hold +inf).
      layout: static shape of the table.
      inv_gamma: scalar 1 / gamma (ignored when ``rec.hard``).
      end_row: scalar int, the row whose values are reported.
      record: what to keep besides the three anti-diagonals in flight:
        None (the value only), "table" (R of every cell), or "steps" (the
        probabilities of the vertical and diagonal steps into every cell,
        all the backward sweep needs).

    Returns:
      (recorded, row_values): the packed table, the pair of packed step
      probabilities (vertical, diagonal), or None; and (K,) the values R(end_row, k - end_row) of
      every anti-diagonal k (+inf where that is no cell).
    """
    n = layout.n
    big = jnp.asarray(INF, costs.dtype)
    gamma = 1.0 / inv_gamma
    rows = jnp.arange(n)

    def step(carry, k):
        above1, above2, recorded = carry  # diagonals k-1, k-2 over rows -1 .. N-1
        cost = layout.read(costs, k, big)
        candidates = _candidates(cost, above1[:-1], above1[1:], above2[:-1], k, rows, rec)
        value, steps = _hard_step(candidates) if rec.hard else _soft_step(candidates, gamma, inv_gamma)
        value = jnp.where(layout.valid(k), value, big)
        if record == "table":
            recorded = layout.write(recorded, k, value)
        elif record == "steps":
            recorded = tuple(layout.write(r, k, p) for r, p in zip(recorded, steps))
        return (jnp.concatenate([big[None], value]), above1, recorded), value[end_row]

    recorded = {
        None: None,
        "table": layout.full(big, costs.dtype),
        "steps": (layout.full(0.0, costs.dtype), layout.full(0.0, costs.dtype)),
    }[record]
    fill = jnp.full((n + 1,), big)
    (_, _, recorded), row_values = lax.scan(step, (fill, fill, recorded), jnp.arange(n + layout.m - 1))
    return recorded, row_values


def backward(steps, layout: Diagonals, end_row, end_seeds, rec: Recursion):
    """Adjoint sweep: gradient of the reported value w.r.t. every cost.

    With G(i, j) = d value / d R(i, j) (the expected alignment for unit
    weights), G(i, j) = sum over successors s of G(s) * P(step into s), and
    d value / d C(i, j) = G(i, j) * sum over steps t of P_t(i, j) * w_t.

    Args:
      steps: (p_vertical, p_diagonal), the packed probabilities of the
        vertical and diagonal steps recorded by :func:`forward`.
      layout: static shape of the table.
      end_row: scalar int, row of the end cells.
      end_seeds: (M,) d value / d R(end_row, j) for every column j.

    Returns:
      The packed gradient d value / d C.
    """
    n, m = layout.n, layout.m
    step_v, step_d = steps
    dtype = step_v.dtype
    w_v, w_h, w_d = rec.weights
    rows = jnp.arange(n)
    zero = jnp.zeros((1,), dtype)
    # d value / d R(end_row, k - end_row), per anti-diagonal k.
    seeds = lax.dynamic_update_slice(jnp.zeros((n + m - 1,), dtype), end_seeds, (end_row,))

    def step(carry, k):
        # Flows out of diagonal k+1 (vertical, horizontal, diagonal steps) and
        # the diagonal flow out of diagonal k+2, over rows 0 .. N (N: past the end).
        flow_v, flow_h, flow_d1, flow_d2, grad = carry
        seed = jnp.where(rows == end_row, seeds[k], 0.0)
        adjoint = jnp.where(layout.valid(k), flow_v[1:] + flow_h[:-1] + flow_d2[1:] + seed, 0.0)
        p_v, p_d = layout.read(step_v, k, 0.0), layout.read(step_d, k, 0.0)
        p_h = 1.0 - p_v - p_d
        if rec.weights == (1.0, 1.0, 1.0):
            cost_grad = adjoint  # the step probabilities sum to one
        else:
            vertical_weight = jnp.where(_is_start(k, rows, rec), 1.0, w_v)  # the start term has weight 1
            cost_grad = adjoint * (vertical_weight * p_v + w_h * p_h + w_d * p_d)
        grad = layout.write(grad, k, cost_grad)
        flows = [jnp.concatenate([adjoint * p, zero]) for p in (p_v, p_h, p_d)]
        return (*flows, flow_d1, grad), None

    flat = jnp.zeros((n + 1,), dtype)
    init = (flat, flat, flat, flat, layout.full(0.0, dtype))
    (*_, grad), _ = lax.scan(step, init, jnp.arange(n + m - 1), reverse=True)
    return grad


def subsequence_ends(costs, layout: Diagonals, end_row, rec: Recursion):
    """Hard subsequence recursion that also propagates each cell's start column.

    Returns:
      (values, origins), each (K,): for the cell (end_row, k - end_row) of
      every anti-diagonal k, its accumulated cost (+inf where it is no cell)
      and the column of row 0 where its optimal alignment starts.
    """
    n, m = layout.n, layout.m
    big = jnp.asarray(INF, costs.dtype)
    rows = jnp.arange(n)
    fill = jnp.full((n + 1,), big)
    no_origin = jnp.zeros((n + 1,), jnp.int32)

    def step(carry, k):
        above1, above2, origin1, origin2 = carry  # rows -1 .. N-1
        candidates = _candidates(layout.read(costs, k, big), above1[:-1], above1[1:], above2[:-1], k, rows, rec)
        _, (p_v, p_d) = _hard_step(candidates)
        origin_v = jnp.where(rows == 0, k.astype(jnp.int32), origin1[:-1])  # a start in row 0 begins at column k
        origin = jnp.where(p_d > 0, origin2[:-1], jnp.where(p_v > 0, origin_v, origin1[1:]))
        value = jnp.where(layout.valid(k), _hard_step(candidates)[0], big)
        carry = (jnp.concatenate([big[None], value]), above1, jnp.concatenate([no_origin[:1], origin]), origin1)
        return carry, (value[end_row], origin[end_row])

    _, (values, origins) = lax.scan(step, (fill, fill, no_origin, no_origin), jnp.arange(n + m - 1))
    return values, origins

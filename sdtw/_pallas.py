"""Fused Pallas kernels for the DTW recursion: one launch per sweep.

The recursion, the recorded step probabilities and the adjoint are those of
:mod:`sdtw._wavefront` (whose step functions run inside the kernels); the
layout is for a GPU. One program aligns one cost matrix: the kernels are
written for one pair, and ``jax.vmap`` turns the batch axis into the grid
(pallas_call's batching rule), so each pair gets its own program, looping
over its own n + m - 1 anti-diagonals.

Anti-diagonal k is a vector over the rows i, W entries (W the power of two
>= N), held in registers. Of the predecessors of (i, j), (i, j-1) sits at the
same index of diagonal k-1, while (i-1, j) and (i-1, j-1) sit one index
lower in diagonals k-1 and k-2. Shifting a vector by one lane crosses
threads, so each step writes its diagonal to a scratch row in memory, waits
at a block-wide barrier and reads it back shifted; the diagonal predecessor
is the previous step's shifted read. Two scratch rows alternate: a row is
rewritten two steps later, after every thread has passed the barrier that
follows its last read.

Every table the kernels read or write is skewed: row k of a (K, W) array,
K = N + M - 1, holds anti-diagonal k, entry i the cell (i, k - i). A step
then loads and stores W consecutive entries, which the GPU coalesces into a
few wide transactions; in the (N, M) layout lane i sits M - 1 entries from
lane i + 1 and every lane costs a transaction of its own (at N = M = 4096
that made the forward sweep 4x slower). XLA skews the costs before the
forward kernel and unskews the gradient after the backward one, one gather
each, at the price of K * W instead of N * M entries per table.

Forward: the probabilities of the vertical and diagonal steps go into two
skewed tables, and R(n-1, j) into an (M,) vector (the end cells). Backward:
the adjoint sweep of :func:`sdtw._wavefront.backward` on those tables, from
the last diagonal to the first, the flows shifted one row the other way.

Triton limits (see the GPU notes of the project): every vector, load and
store has W entries, a power of two; scratch rows are picked with ``k & 1``,
never ``%`` on a traced int. Cells outside the used block (n, m) are masked,
so lengths may differ per pair. Triton's minimum and maximum drop a NaN
operand (IEEE minNum), unlike XLA's: the forward kernel puts NaN back.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl

try:
    from jax.experimental.pallas import triton as plt
except ImportError:  # pragma: no cover - a JAX without Pallas's Triton back end (deprecated in JAX 0.11)
    plt = None

from sdtw import _core, _wavefront
from sdtw._wavefront import INF, Recursion


def available() -> bool:
    """Whether this JAX has the Triton back end of Pallas the kernels are written for."""
    return plt is not None


def on_gpu() -> bool:
    """Whether the default backend compiles Pallas kernels with Triton."""
    return jax.default_backend() in ("gpu", "cuda", "rocm")


def _pow2(x: int) -> int:
    """The smallest power of two >= x."""
    return 1 << max(x - 1, 0).bit_length()


def _compiler_params(width: int, interpret: bool):
    if interpret:
        return None
    # One lane per thread, up to 32 warps (1024 threads): on an H200, value+grad at W = 1024 and
    # 4096 took 4.18 and 56.9 ms with 8 warps, 3.64 and 34.8 with 32 (benchmarks/pallas_tuning.py).
    # One stage: a loop with a barrier in it has nothing to pipeline.
    return plt.CompilerParams(num_warps=min(max(width // 32, 1), 32), num_stages=1)


def _barrier(interpret: bool) -> None:
    # The interpreter runs a program as whole-array operations, one after the other.
    if not interpret:
        plt.debug_barrier()


def _valid(k, rows, ends):
    """(W,) bool: whether the cells (i, k - i) of anti-diagonal k lie in the used block (n, m)."""
    cols = k - rows
    return (rows < ends[0]) & (cols >= 0) & (cols < ends[1])


def _skew(table, width: int, fill):
    """(N, M) -> (N + M - 1, W): row k holds anti-diagonal k, entry i = table[i, k - i], ``fill`` off the table."""
    n, m = table.shape
    k, i = jnp.arange(n + m - 1)[:, None], jnp.arange(width)[None, :]
    inside = (i < n) & (k - i >= 0) & (k - i < m)
    return jnp.where(inside, table[jnp.clip(i, 0, n - 1), jnp.clip(k - i, 0, m - 1)], fill)


def _unskew(skewed, shape):
    """The inverse of :func:`_skew`: (N + M - 1, W) -> (N, M)."""
    i, j = jnp.arange(shape[0])[:, None], jnp.arange(shape[1])[None, :]
    return skewed[i + j, i]


def _any_nan(arrays):
    return functools.reduce(jnp.logical_or, [jnp.isnan(a) for a in arrays])


# ----------------------------------------------------------------------------
# Kernels (one pair each).


def _forward_kernel(rec: Recursion, interpret: bool, record: bool, params_ref, ends_ref, cost_ref, *out_refs):
    """Forward sweep of one (N, M) cost matrix.

    Refs:
      params_ref: (2,) gamma and 1 / gamma.
      ends_ref: (2,) int32 (n, m), the used block.
      cost_ref: (K, W) skewed costs, +inf at inadmissible cells.
      out_refs: if ``record``, the (K, W) skewed probabilities of the
        vertical and diagonal steps into each cell; then R(n-1, j) at index
        j + W - 1 of an (N + M + W - 2,) vector (lane i writes k - i + W - 1:
        one address per lane, never out of range); then the (2, W) scratch.
        Entries outside the used block hold garbage.
    """
    *step_refs, last_ref, scratch_ref = out_refs
    width = scratch_ref.shape[1]
    n, m = ends_ref[0], ends_ref[1]
    gamma, inv_gamma = params_ref[0], params_ref[1]
    rows = jnp.arange(width, dtype=jnp.int32)
    big = jnp.full((width,), INF, cost_ref.dtype)
    above = jnp.maximum(rows - 1, 0)

    def step(k, carry):
        left, diag = carry  # R(i, j-1) from diagonal k-1, R(i-1, j-1) from k-2
        valid = _valid(k, rows, (n, m))
        cost = jnp.where(valid, cost_ref[k, :], INF)
        up = plt.load(scratch_ref.at[(k - 1) & 1, above], mask=rows > 0, other=INF)  # R(i-1, j)
        candidates = _wavefront._candidates(cost, up, left, diag, k, rows, rec)
        if rec.hard:
            value, steps = _wavefront._hard_step(candidates)
        else:
            value, steps = _wavefront._soft_step(candidates, gamma, inv_gamma)
        poisoned = _any_nan(candidates)  # Triton's minimum drops NaN: put it back, as XLA keeps it
        value = jnp.where(valid, jnp.where(poisoned, jnp.nan, value), INF)
        steps = [jnp.where(poisoned, jnp.nan, p) for p in steps]
        for ref, p in zip(step_refs, steps):
            ref[k, :] = p
        plt.store(last_ref.at[k - rows + (width - 1)], value, mask=valid & (rows == n - 1))
        scratch_ref[k & 1, :] = value
        _barrier(interpret)
        return value, up

    scratch_ref[1, :] = big  # diagonal -1
    _barrier(interpret)
    lax.fori_loop(0, n + m - 1, step, (big, big))


def _backward_kernel(rec: Recursion, interpret: bool, ends_ref, seeds_ref, p_v_ref, p_d_ref, grad_ref, scratch_ref):
    """Adjoint sweep of one pair, as :func:`sdtw._wavefront.backward`.

    Refs:
      ends_ref: (2,) int32 (n, m).
      seeds_ref: (M,) d value / d R(n-1, j).
      p_v_ref, p_d_ref: (K, W) skewed step probabilities recorded by the forward sweep.
      grad_ref: (K, W) output, skewed d value / d C, 0 outside the used block.
      scratch_ref: (4, W): two rows of (vertical, diagonal) flows.
    """
    width = scratch_ref.shape[1]
    n, m = ends_ref[0], ends_ref[1]
    rows = jnp.arange(width, dtype=jnp.int32)
    zero = jnp.zeros((width,), p_v_ref.dtype)
    below, has_below = jnp.minimum(rows + 1, width - 1), rows + 1 < width
    w_v, w_h, w_d = rec.weights

    def step(t, carry):
        # Flows into the cells of diagonal k: from (i, j+1) and, shifted,
        # from (i+1, j) on diagonal k+1 and from (i+1, j+1) on diagonal k+2.
        flow_h, flow_v, flow_d1, flow_d2 = carry
        k = n + m - 2 - t
        valid = _valid(k, rows, (n, m))
        end_col = jnp.clip(k - rows, 0, seeds_ref.shape[0] - 1)
        seed = plt.load(seeds_ref.at[end_col], mask=valid & (rows == n - 1), other=0.0)
        adjoint = jnp.where(valid, flow_v + flow_h + flow_d2 + seed, 0.0)
        p_v = jnp.where(valid, p_v_ref[k, :], 0.0)
        p_d = jnp.where(valid, p_d_ref[k, :], 0.0)
        p_h = 1.0 - p_v - p_d
        if rec.weights == (1.0, 1.0, 1.0):
            cost_grad = adjoint  # the step probabilities sum to one
        else:
            vertical_weight = jnp.where(_wavefront._is_start(k, rows, rec), 1.0, w_v)  # the start term has weight 1
            cost_grad = adjoint * (vertical_weight * p_v + w_h * p_h + w_d * p_d)
        grad_ref[k, :] = cost_grad  # 0 at lanes off the used block: their adjoint is
        slot = 2 * (k & 1)
        scratch_ref[slot, :] = adjoint * p_v
        scratch_ref[slot + 1, :] = adjoint * p_d
        _barrier(interpret)
        shifted_v = plt.load(scratch_ref.at[slot, below], mask=has_below, other=0.0)
        shifted_d = plt.load(scratch_ref.at[slot + 1, below], mask=has_below, other=0.0)
        return adjoint * p_h, shifted_v, shifted_d, flow_d1

    lax.fori_loop(0, n + m - 1, step, (zero, zero, zero, zero))


# ----------------------------------------------------------------------------
# Calls (one pair; vmap adds the grid).


def _forward(rec: Recursion, cost, gamma, ends, *, record: bool, interpret: bool):
    """Run the forward kernel on one (N, M) cost matrix.

    Returns:
      (steps, last_row): the skewed (K, W) vertical and diagonal step
      probabilities (None unless ``record``) and (M,) R(n-1, j). Both hold
      garbage outside the used block.
    """
    (n_max, m_max), dtype = cost.shape, cost.dtype
    width = _pow2(n_max)
    params = jnp.stack([gamma, 1.0 / gamma]).astype(dtype)
    table = jax.ShapeDtypeStruct((n_max + m_max - 1, width), dtype)
    out_shape = (table, table) * record + (
        jax.ShapeDtypeStruct((n_max + m_max + width - 2,), dtype),
        jax.ShapeDtypeStruct((2, width), dtype),
    )
    outputs = pl.pallas_call(
        functools.partial(_forward_kernel, rec, interpret, record),
        out_shape=out_shape,
        interpret=interpret,
        compiler_params=_compiler_params(width, interpret),
        name="sdtw_forward",
    )(params, ends, _skew(cost, width, INF))
    return (tuple(outputs[:2]) if record else None), outputs[-2][width - 1 : width - 1 + m_max]


def _backward(rec: Recursion, steps, seeds, ends, *, interpret: bool):
    """Run the adjoint kernel: skewed (K, W) d value / d C, 0 outside the used block."""
    p_v, p_d = steps
    width = p_v.shape[1]
    grad, _ = pl.pallas_call(
        functools.partial(_backward_kernel, rec, interpret),
        out_shape=(
            jax.ShapeDtypeStruct(p_v.shape, p_v.dtype),
            jax.ShapeDtypeStruct((4, width), p_v.dtype),
        ),
        interpret=interpret,
        compiler_params=_compiler_params(width, interpret),
        name="sdtw_backward",
    )(ends, seeds, p_v, p_d)
    return grad


def _oriented(rec: Recursion, cost, ends):
    """Tall matrices are transposed, so the vectors span min(N, M) rows (see
    :class:`sdtw._core._Geometry`); subsequence alignment is not symmetric."""
    if rec.subsequence or cost.shape[0] <= cost.shape[1]:
        return False, rec, cost, ends
    return True, rec.transposed(), cost.T, ends[::-1]


def _used_block(shape, ends):
    rows, cols = jnp.arange(shape[0])[:, None], jnp.arange(shape[1])[None, :]
    return (rows < ends[0]) & (cols < ends[1])


# ----------------------------------------------------------------------------
# The differentiable value.


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def alignment_value(rec: Recursion, interpret: bool, cost, gamma, ends):
    """Soft/hard DTW value of one cost matrix by the Pallas kernels.

    The same function as :func:`sdtw._core.alignment_value`. Its gradient
    runs both kernels (forward with recorded steps, then backward) when the
    VJP's forward pass runs; derivatives of that gradient (second order) go
    through the XLA sweeps of :mod:`sdtw._core`, whose backward is itself
    differentiable.

    Args:
      rec: static recursion description.
      interpret: static; True runs the kernels in Pallas interpret mode (off GPUs).
      cost: (N, M) float costs, +inf at inadmissible cells.
      gamma: scalar smoothing (> 0; unused when ``rec.hard``), dtype of ``cost``.
      ends: (2,) int32 (n, m), the used top-left block.

    Returns:
      Scalar value, +inf when no admissible alignment exists.
    """
    _, rec, cost, ends = _oriented(rec, cost, ends)
    _, last_row = _forward(rec, cost, gamma, ends, record=False, interpret=interpret)
    return _core.end_of_row(last_row, ends[1] - 1, 1.0 / gamma, rec)[0]


@functools.partial(jax.custom_jvp, nondiff_argnums=(0, 1))
def value_and_grad(rec: Recursion, interpret: bool, cost, gamma, ends):
    """(value, d value / d C) by the two kernels; arguments as :func:`alignment_value`.

    Returns:
      The scalar value and the (N, M) gradient, 0 outside the used block.
    """
    transposed, rec_o, cost_o, ends_o = _oriented(rec, cost, ends)
    steps, last_row = _forward(rec_o, cost_o, gamma, ends_o, record=True, interpret=interpret)
    value, seeds = _core.end_of_row(last_row, ends_o[1] - 1, 1.0 / gamma, rec_o)
    grad = _unskew(_backward(rec_o, steps, seeds, ends_o, interpret=interpret), cost_o.shape)
    grad = jnp.where(_used_block(grad.shape, ends_o), grad, 0.0)  # diagonals past n + m - 2 are never written
    return value, grad.T if transposed else grad


@value_and_grad.defjvp
def _value_and_grad_jvp(rec, interpret, primals, tangents):
    # The kernels have no derivative rules; the XLA backward sweep is differentiable.
    cost, gamma, ends = primals
    d_cost, d_gamma, _ = tangents

    def xla(c, g):
        return jax.value_and_grad(_core.alignment_value, argnums=2)(rec, c.shape, c, g, ends)

    return jax.jvp(xla, (cost, gamma), (d_cost, d_gamma))


def _fwd(rec, interpret, cost, gamma, ends):
    value, grad = value_and_grad(rec, interpret, cost, gamma, ends)
    return value, (cost, gamma, value, grad)


def _bwd(rec, interpret, saved, cotangent):
    cost, gamma, value, grad = saved
    if rec.hard:
        gamma_grad = jnp.zeros_like(gamma)
    else:
        gamma_grad = (cotangent * _core.gamma_gradient(value, grad, cost, 1.0 / gamma)).astype(jnp.result_type(gamma))
    return cotangent * grad, gamma_grad, None


alignment_value.defvjp(_fwd, _bwd)

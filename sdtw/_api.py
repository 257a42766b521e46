"""Public soft-DTW / DTW functions (one cost matrix each; use jax.vmap for batches)."""

from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import checkify

from sdtw import _checks, _core, _pallas, costs
from sdtw._wavefront import Recursion

_OPTIONS_DOC = """
      lengths: optional (n, m) ints (may be traced, e.g. per-example lengths
        under vmap): only the top-left (n, m) block of C is used and the
        gradient is zero outside it. Traced lengths are clipped into range.
      band: optional Sakoe-Chiba radius: cell (i, j) is admissible iff
        |i - j| <= band. Must be >= |N - M| (else no alignment exists).
      mask: optional boolean (N, M), True where a cell is admissible.
      weights: (w_v, w_h, w_d) weights of the vertical (1, 0), horizontal
        (0, 1) and diagonal (1, 1) steps: entering cell (i, j) by step t adds
        w_t * C(i, j). The start cell adds C(0, 0) (weight 1). Classical music
        synchronization uses (1, 1, 2): a diagonal step then weighs as much as
        a vertical plus a horizontal one, so diagonal paths are not favoured.
      subsequence: if True, align all N rows (the query) to any contiguous
        run of the M columns (the database): an alignment may start at any
        cell (0, s), adding C(0, s), and end at any cell (n-1, e).
      impl: "xla": the XLA wavefront; "pallas": the fused Pallas kernel,
        compiled by Triton on GPUs and run in Pallas interpret mode
        elsewhere (same results, slow); "auto" (default): the kernel on a
        GPU, the XLA wavefront elsewhere. The kernel covers every option
        above; derivatives of the gradient (second order, e.g. the gradient
        of :func:`sharp_soft_dtw`) always
        go through the XLA sweeps. :func:`subsequence_dtw` and
        :func:`accumulated_cost` always run the XLA wavefront.
"""


def _with_options_doc(fn):
    fn.__doc__ = fn.__doc__.replace("    Options:\n", "    Options:" + _OPTIONS_DOC, 1)
    return fn


def _prepare(C, lengths, band, mask, weights, subsequence, hard):
    C = _checks.as_cost_matrix(C)
    rec = Recursion(_checks.check_weights(weights), bool(subsequence), hard)
    ends = _checks.end_indices(C.shape, lengths, band)
    allowed = _checks.admissible_cells(C.shape, band, mask, rec.subsequence)
    return C, ends, allowed, rec


def _blocked_to_inf(C, allowed):
    """Cells outside `allowed` become +inf, like +inf costs: inadmissible."""
    return C if allowed is None else jnp.where(allowed, C, jnp.asarray(jnp.inf, C.dtype))


def _backend(impl: str) -> str:
    """Resolve ``impl``: "xla", "pallas" (compiled by Triton) or "interpret" (the kernel in Pallas interpret mode).

    "auto" is the Pallas kernel on a GPU (faster than the XLA wavefront at every size of
    docs/results/sdtw_speed_gpu.md) and the XLA wavefront elsewhere, where the kernel could only be
    interpreted.
    """
    if impl not in ("auto", "xla", "pallas"):
        raise ValueError(f"`impl` must be 'auto', 'xla' or 'pallas', got {impl!r}.")
    if impl == "xla" or (impl == "auto" and not (_pallas.available() and _pallas.on_gpu())):
        return "xla"
    if not _pallas.available():
        raise RuntimeError("impl='pallas' needs the Triton back end of Pallas (jax.experimental.pallas.triton), "
                           f"which JAX {jax.__version__} lacks; use impl='xla'.")
    return "pallas" if _pallas.on_gpu() else "interpret"


@functools.partial(jax.jit, static_argnames=("rec", "backend"))
def _value(C, gamma, ends, allowed, rec, backend):
    gamma = jnp.asarray(gamma, C.dtype)
    cost = _blocked_to_inf(C, allowed)
    if backend == "xla":
        return _core.alignment_value(rec, C.shape, cost, gamma, ends)
    return _pallas.alignment_value(rec, backend == "interpret", cost, gamma, ends)


@_with_options_doc
def soft_dtw(
    C: jax.Array,
    gamma: float | jax.Array,
    *,
    lengths: Any = None,
    band: int | None = None,
    mask: jax.Array | None = None,
    weights: tuple[float, float, float] = (1.0, 1.0, 1.0),
    subsequence: bool = False,
    impl: str = "auto",
) -> jax.Array:
    """Soft-DTW: the soft-minimum of the costs of all monotone alignments.

    ``SDTW_gamma(C) = -gamma log sum_A exp(-<A, C>_w / gamma)`` over
    alignments A from (0, 0) to (N-1, M-1) with steps (1, 0), (0, 1), (1, 1)
    (Cuturi & Blondel, "Soft-DTW: a differentiable loss function for
    time-series", ICML 2017). Computed by the Bellman recursion
    ``R(i, j) = softmin(R(i-1, j) + w_v C, R(i, j-1) + w_h C, R(i-1, j-1) + w_d C)``,
    ``R(0, 0) = C(0, 0)``, over anti-diagonals.

    The gradient w.r.t. C is the expected alignment (see
    :func:`expected_alignment`), computed by a custom VJP: the backward
    recursion runs on the step probabilities saved by the forward sweep, in
    O(NM) time and memory (about 5 N*M floats for value and gradient). The
    gradient w.r.t. gamma is exact as well.

    Args:
      C: (N, M) cost matrix, N frames of the first sequence, M of the second.
        Integer and half-precision inputs are computed in float32.
        +inf costs make a cell inadmissible (like ``mask``). NaN costs
        propagate into the value and gradient: wrap the call in
        :func:`checked` to raise an error instead.
      gamma: smoothing, > 0; gamma -> 0 recovers :func:`dtw`.

    Options:

    Returns:
      Scalar (dtype of C, at least float32); +inf when no admissible alignment
      exists (then the gradient is zero).

    Example:
      >>> x, y = jnp.ones((5, 3)), jnp.zeros((7, 3))
      >>> value = sdtw.soft_dtw(sdtw.costs.squared_euclidean(x, y), 0.1)
      >>> Cs = jnp.zeros((8, 5, 7))  # a batch of cost matrices
      >>> values, grads = jax.vmap(jax.value_and_grad(sdtw.soft_dtw), in_axes=(0, None))(Cs, 0.1)
    """
    _checks.check_gamma(gamma)
    backend = _backend(impl)
    C, ends, allowed, rec = _prepare(C, lengths, band, mask, weights, subsequence, False)
    return _value(C, gamma, ends, allowed, rec, backend)


@_with_options_doc
def expected_alignment(
    C: jax.Array, gamma: float | jax.Array, **options: Any
) -> jax.Array:
    """Expected alignment E = d soft_dtw / d C, shape (N, M).

    E(i, j) is the probability that cell (i, j) lies on the alignment under the
    Gibbs distribution p(A) ~ exp(-<A, C>_w / gamma) (for unit weights; with
    step weights, E(i, j) = sum_t P(enter (i, j) by step t) * w_t).

    Args:
      C: (N, M) cost matrix.
      gamma: smoothing, > 0.

    Options:

    Returns:
      (N, M) array, zero outside the used block and at inadmissible cells.
    """
    return jax.grad(soft_dtw)(C, gamma, **options)


@_with_options_doc
def dtw(
    C: jax.Array,
    *,
    lengths: Any = None,
    band: int | None = None,
    mask: jax.Array | None = None,
    weights: tuple[float, float, float] = (1.0, 1.0, 1.0),
    subsequence: bool = False,
    impl: str = "auto",
) -> jax.Array:
    """Hard DTW: the minimal cost of a monotone alignment (gamma = 0).

    Its gradient w.r.t. C is the indicator of the optimal alignment (a
    subgradient; ties prefer diagonal, then vertical steps), see
    :func:`alignment_matrix`.

    Args:
      C: (N, M) cost matrix.

    Options:

    Returns:
      Scalar; +inf when no admissible alignment exists.
    """
    backend = _backend(impl)
    C, ends, allowed, rec = _prepare(C, lengths, band, mask, weights, subsequence, True)
    return _value(C, 1.0, ends, allowed, rec, backend)


@_with_options_doc
def alignment_matrix(C: jax.Array, **options: Any) -> jax.Array:
    """The optimal alignment as a 0/1 matrix of shape (N, M) (jit- and vmap-friendly).

    With step weights, entries are the weights of the steps that enter each
    cell of the path (1 at the start cell).

    Args:
      C: (N, M) cost matrix.

    Options:
    """
    return jax.grad(dtw)(C, **options)


@functools.partial(jax.jit, static_argnames=("band", "weights", "subsequence", "impl"))
def _value_and_path_indicator(C, ends, mask, band, weights, subsequence, impl):
    options = dict(lengths=ends, band=band, mask=mask, weights=weights, subsequence=subsequence, impl=impl)
    return jax.value_and_grad(dtw)(C, **options)


def dtw_path(
    C: jax.Array,
    *,
    lengths: Any = None,
    band: int | None = None,
    mask: jax.Array | None = None,
    weights: tuple[float, float, float] = (1.0, 1.0, 1.0),
    subsequence: bool = False,
    impl: str = "auto",
) -> np.ndarray:
    """The optimal alignment path as an int array (L, 2) of (row, column) pairs.

    Runs on the host (the length L depends on the data). The path starts at
    (0, 0) (at (0, s) for subsequence alignment) and ends at (n-1, m-1) (at
    (n-1, e)). Options are those of :func:`dtw`. The value and its gradient are
    compiled together, once per shape of C and per static option (``lengths``
    and ``mask`` are traced): pad C to a few sizes and pass ``lengths`` to align
    many pairs without compiling for each.

    Args:
      C: (N, M) cost matrix.

    Returns:
      (L, 2) numpy int array, rows and columns non-decreasing.

    Raises:
      ValueError: `C` holds NaN, or no alignment is admissible (value +inf).
    """
    C = _checks.as_cost_matrix(C)
    ends = _checks.end_indices(C.shape, lengths, band)  # concrete lengths are checked here, not traced
    _backend(impl)  # an unknown impl fails here, not inside jit
    value, indicator = _value_and_path_indicator(C, ends, mask, band, tuple(weights), bool(subsequence), impl)
    if np.isnan(value):
        raise ValueError("`C` holds NaN: there is no optimal path (sdtw.checked locates the NaN).")
    if np.isinf(value):
        raise ValueError("no admissible alignment: every path crosses a +inf cost or a masked cell.")
    return np.argwhere(np.asarray(indicator) > 0)


@functools.partial(jax.jit, static_argnames=("rec",))
def _subsequence(C, ends, allowed, rec):
    cost = _blocked_to_inf(C, allowed)
    return _core.subsequence_matching(rec, cost, ends)


def subsequence_dtw(
    C: jax.Array,
    *,
    lengths: Any = None,
    mask: jax.Array | None = None,
    weights: tuple[float, float, float] = (1.0, 1.0, 1.0),
) -> tuple[jax.Array, jax.Array]:
    """Subsequence DTW: the query (N rows) matched anywhere in the database (M columns).

    Müller, "Fundamentals of Music Processing", Sec. 7.2.3: the matching
    function Delta(e) is the cost of the best alignment of the whole query
    that ends at database column e; its local minima are the matches.

    Args:
      C: (N, M) cost matrix, N query frames, M database frames.
      lengths: optional (n, m) ints: query length n and database length m.
      mask: optional boolean (N, M) of admissible cells.
      weights: step weights, see :func:`dtw`.

    Returns:
      (delta, starts): (M,) float matching function (+inf past m) and (M,)
      int32 start column s of the optimal alignment ending at each column e,
      so the match is the database segment [s, e] (inclusive).
    """
    C, ends, allowed, rec = _prepare(C, lengths, None, mask, weights, True, True)
    return _subsequence(C, ends, allowed, rec)


@functools.partial(jax.jit, static_argnames=("rec",))
def _accumulated(C, gamma, allowed, rec):
    return _core.accumulated_table(rec, _blocked_to_inf(C, allowed), 1.0 / jnp.asarray(gamma, C.dtype))


def accumulated_cost(
    C: jax.Array,
    gamma: float | jax.Array = 0.0,
    *,
    band: int | None = None,
    mask: jax.Array | None = None,
    weights: tuple[float, float, float] = (1.0, 1.0, 1.0),
    subsequence: bool = False,
) -> jax.Array:
    """The whole accumulated-cost table R (N, M) of the recursion (for inspection and plots).

    Args:
      C: (N, M) cost matrix.
      gamma: smoothing; 0 (default) for hard DTW.
      band, mask, weights, subsequence: as in :func:`soft_dtw`.

    Returns:
      (N, M) table R, +inf at cells no admissible alignment reaches.
    """
    hard = _checks._concrete(gamma) is not None and float(np.asarray(gamma)) == 0.0
    if not hard:
        _checks.check_gamma(gamma)
    C, _, allowed, rec = _prepare(C, None, band, mask, weights, subsequence, hard)
    return _accumulated(C, 1.0 if hard else gamma, allowed, rec)


def divergence(
    x: jax.Array,
    y: jax.Array,
    gamma: float | jax.Array,
    *,
    cost: Callable[[jax.Array, jax.Array], jax.Array] = costs.squared_euclidean,
    lengths: Any = None,
    **options: Any,
) -> jax.Array:
    """Soft-DTW divergence (Blondel, Mensch & Vert, AISTATS 2021, Eq. 5).

    ``D(x, y) = SDTW(C(x, y)) - (SDTW(C(x, x)) + SDTW(C(y, y))) / 2``:
    removes the entropic bias of soft-DTW, so D(x, x) = 0, and D >= 0 for
    costs such as the squared Euclidean one.

    Args:
      x: (N, D) first sequence.
      y: (M, D) second sequence.
      gamma: smoothing, > 0.
      cost: pairwise cost, (N, D), (M, D) -> (N, M); see :mod:`sdtw.costs`.
      lengths: optional (n, m) true lengths of x and y.
      **options: ``weights`` or ``band`` passed on to :func:`soft_dtw`.

    Returns:
      Scalar.
    """
    if lengths is None:
        lengths = (x.shape[0], y.shape[0])
    n, m = lengths
    xy = soft_dtw(cost(x, y), gamma, lengths=(n, m), **options)
    xx = soft_dtw(cost(x, x), gamma, lengths=(n, n), **options)
    yy = soft_dtw(cost(y, y), gamma, lengths=(m, m), **options)
    return xy - 0.5 * (xx + yy)


def sharp_soft_dtw(C: jax.Array, gamma: float | jax.Array, **options: Any) -> jax.Array:
    """Sharp soft-DTW: the cost of the expected alignment, <E_gamma(C), C>.

    Blondel, Mensch & Vert (AISTATS 2021), Eq. 4: unlike soft-DTW it has no
    entropic term, so it approaches DTW from above. Its gradient goes through
    the (differentiable) backward sweep of :func:`soft_dtw`.

    Args:
      C: (N, M) cost matrix.
      gamma: smoothing, > 0.
      **options: as in :func:`soft_dtw`.

    Returns:
      Scalar.
    """
    E = expected_alignment(C, gamma, **options)
    # Inadmissible cells may hold +inf where E is 0.
    return jnp.sum(jnp.where(E != 0, E * C, 0.0))


def checked(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap ``fn`` so that a NaN anywhere in its computation raises an error.

    Uses :mod:`jax.experimental.checkify`; works with jit inside ``fn``.

    Example:
      >>> safe_soft_dtw = sdtw.checked(sdtw.soft_dtw)
      >>> safe_soft_dtw(C, 0.1)  # raises if C holds NaN  # doctest: +SKIP
    """
    checked_fn = checkify.checkify(fn, errors=checkify.nan_checks | checkify.user_checks)

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        error, out = checked_fn(*args, **kwargs)
        error.throw()
        return out

    return wrapper

"""DTW alignment of feature sequences: full resolution or memory-bounded multiscale."""

from __future__ import annotations

import functools
import time

import numpy as np
from scipy.ndimage import maximum_filter1d

from experiments.sync.config import SyncConfig, SyncResult

__all__ = ["align", "anchor_at_onsets", "block_mean", "edge_path", "expected_columns", "expected_path", "linear_path",
           "multiscale_path", "path_columns", "strong_onsets", "sync_cost", "sync_features"]

CHROMA = 12  # the first columns of a feature row; any further ones are onset features
# Cost matrices are padded to multiples of this size so the DTW kernel compiles once per bucket.
_TILE_BUCKET = 128


def sync_cost(x: np.ndarray, y: np.ndarray, onset_weight: float = 0.0) -> np.ndarray:
    """``(N, M)`` cost of feature rows laid out as :mod:`experiments.sync.features` makes them.

    The cosine distance of the chroma columns (the first 12), plus ``onset_weight`` times the
    Euclidean distance of the DLNCO columns (the next 12) where there are any: the harmony, and
    where the notes start (Ewert, Müller & Grosche 2009).
    """
    n, m = len(x), len(y)
    return np.asarray(_cost_kernel(float(onset_weight))(_pad_rows(x, _bucket(n)), _pad_rows(y, _bucket(m))))[:n, :m]


def _pad_rows(x: np.ndarray, rows: int) -> np.ndarray:
    """``x`` (T, D) as float32 with zero rows appended up to ``rows``."""
    x = np.asarray(x, np.float32)
    return np.pad(x, ((0, rows - len(x)), (0, 0)))


@functools.cache
def _cost_kernel(onset_weight: float):
    """:func:`sync_cost` compiled: called on inputs padded to a few sizes, it compiles once per
    size (op by op, every pair of lengths compiled each operation anew)."""
    import jax
    import jax.numpy as jnp

    import sdtw

    def cost(x, y):
        chroma = sdtw.costs.cosine(x[:, :CHROMA], y[:, :CHROMA])
        if not onset_weight or x.shape[1] <= CHROMA:
            return chroma
        squared = sdtw.costs.squared_euclidean(x[:, CHROMA:], y[:, CHROMA:])
        return chroma + onset_weight * jnp.sqrt(jnp.maximum(squared, 0.0))

    return jax.jit(cost)


def _bucket(size: int) -> int:
    return -(-size // _TILE_BUCKET) * _TILE_BUCKET


def _pad_cost(cost: np.ndarray) -> np.ndarray:
    """``cost`` (N, M) as float32, zero-padded to multiples of ``_TILE_BUCKET`` a side."""
    n, m = cost.shape
    padded = np.zeros((_bucket(n), _bucket(m)), dtype=np.float32)
    padded[:n, :m] = cost
    return padded


def _dtw_path(cost: np.ndarray, weights, mask: np.ndarray | None = None) -> np.ndarray:
    """:func:`sdtw.dtw_path` on ``cost`` zero-padded to a multiple of 128 a side.

    The padding (excluded through ``lengths``) lets the compiled kernel be
    reused for inputs of similar size instead of compiling once per shape.
    """
    import sdtw

    n, m = cost.shape
    padded = _pad_cost(cost)
    options = {"weights": tuple(weights), "lengths": (n, m)}
    if mask is not None:
        padded_mask = np.zeros(padded.shape, dtype=bool)
        padded_mask[:n, :m] = mask
        options["mask"] = padded_mask
    return np.asarray(sdtw.dtw_path(padded, **options), dtype=np.int64)


@functools.cache
def _expected_columns_kernel(gamma: float, weights: tuple[float, float, float]):
    """Compiled (padded cost, n, m[, mask]) -> expected column of every row and its standard
    deviation; the lengths are traced, so one compilation serves every pair of one bucket (with a
    mask and without)."""
    import jax
    import jax.numpy as jnp

    import sdtw

    def expected_columns(cost, n, m, mask=None):
        occupancy = sdtw.expected_alignment(cost, gamma, lengths=(n, m), weights=weights, mask=mask)
        columns = jnp.arange(cost.shape[1], dtype=occupancy.dtype)
        mass = jnp.maximum(occupancy.sum(axis=1), 1e-30)
        mean = (occupancy @ columns) / mass
        # Around the mean, not E[c^2] - E[c]^2: in float32 that difference of two ~1e7 numbers
        # would be off by whole frames.
        variance = jnp.sum(occupancy * (columns[None, :] - mean[:, None]) ** 2, axis=1) / mass
        return mean, jnp.sqrt(variance)

    return jax.jit(expected_columns)


def expected_columns(cost: np.ndarray, gamma: float, weights=(1.0, 1.0, 1.0), mask: np.ndarray | None = None
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Where soft-DTW puts every row of ``cost`` (N, M), and how sure it is.

    Under soft-DTW's distribution over alignments from (0, 0) to (N-1, M-1) through the cells where
    ``mask`` (N, M) is True (all when None).

    Returns:
      ``(columns, spread)``, each ``(N,)``: the expected column of every row, clipped to [0, M-1]
      and made non-decreasing, and the standard deviation of its column (in columns): small where
      one match stands out, large where the row could lie in several places (a held note, or a
      note the other side does not show).
    """
    n, m = cost.shape
    padded = _pad_cost(cost)
    args = [padded, n, m]
    if mask is not None:
        padded_mask = np.zeros(padded.shape, dtype=bool)
        padded_mask[:n, :m] = mask
        args.append(padded_mask)
    kernel = _expected_columns_kernel(float(gamma), tuple(map(float, weights)))
    columns, spread = (np.asarray(out)[:n].astype(np.float64) for out in kernel(*args))
    return np.maximum.accumulate(np.clip(columns, 0.0, m - 1)), spread


def expected_path(cost: np.ndarray, gamma: float, weights=(1.0, 1.0, 1.0)) -> np.ndarray:
    """Soft path through ``cost`` (N, M): for every row a, the expected column under soft-DTW's
    distribution over alignments (``sdtw.expected_alignment``), made non-decreasing.

    The optimal path moves in whole frames and jumps where two paths cost nearly the same; the
    expectation weighs them by their costs, so beats land between frames and near-ties average
    out instead of deciding the path (Cuturi & Blondel 2017, Sec. 2: the gradient of soft-DTW is
    the expected alignment).

    Returns:
      ``(N + 2, 2)`` float path: ``(a, expected column of row a)`` for every row, between the
      corners (0, 0) and (N-1, M-1) (which :func:`~experiments.sync.evaluate.warp_times` reads
      as the ends of runs on the first and last row).
    """
    return _soft_path(cost, gamma, weights)[0]


def _soft_path(cost: np.ndarray, gamma: float, weights) -> tuple[np.ndarray, np.ndarray]:
    """:func:`expected_path` and the spread of every row (:func:`expected_columns`)."""
    columns, spread = expected_columns(cost, gamma, weights)
    return _between_corners(_rows_and_columns(columns), *cost.shape), spread


def _between_corners(points: np.ndarray, n: int, m: int) -> np.ndarray:
    """``(K, 2)`` float points -> ``(K + 2, 2)``: (0, 0) first and (n-1, m-1) last."""
    return np.concatenate([[[0.0, 0.0]], points, [[n - 1.0, m - 1.0]]])


def _rows_and_columns(columns: np.ndarray) -> np.ndarray:
    """``(N,)`` column of every row -> ``(N, 2)`` float points (row, column)."""
    return np.stack([np.arange(len(columns), dtype=np.float64), columns], axis=1)


def sync_features(x: np.ndarray, y: np.ndarray, *, weights=(1.0, 1.0, 1.0), onset_weight: float = 0.0
                  ) -> np.ndarray:
    """Full-resolution DTW path between feature sequences ``x`` (N, D) and ``y`` (M, D) (cost: :func:`sync_cost`).

    Allocates the whole (N, M) cost matrix: use :func:`multiscale_path` for long inputs.

    Returns:
      ``(L, 2)`` int path of (row of x, row of y).
    """
    return _dtw_path(sync_cost(x, y, onset_weight), weights)


def block_mean(x: np.ndarray, factor: int) -> np.ndarray:
    """Average non-overlapping blocks of ``factor`` frames: (T, D) -> (ceil(T / factor), D)."""
    n_blocks = -(-len(x) // factor)
    padded = np.concatenate([x, np.repeat(x[-1:], n_blocks * factor - len(x), axis=0)])
    return padded.reshape(n_blocks, factor, -1).mean(axis=1)


def _band_from_coarse(coarse: np.ndarray, factor: int, radius: int, n: int, m: int):
    """Admissible column range [lo, hi] of every fine row around a projected coarse path."""
    n_coarse = coarse[:, 0].max() + 1
    lo_c = np.full(n_coarse, np.iinfo(np.int64).max)
    hi_c = np.full(n_coarse, -1)
    np.minimum.at(lo_c, coarse[:, 0], coarse[:, 1])
    np.maximum.at(hi_c, coarse[:, 0], coarse[:, 1])
    rows = np.minimum(np.arange(n) // factor, n_coarse - 1)
    lo = lo_c[rows] * factor
    hi = hi_c[rows] * factor + factor - 1
    # Widen by `radius` rows and columns: a sliding min/max over rows, then +-radius.
    pad_lo = np.concatenate([np.full(radius, lo[0]), lo, np.full(radius, lo[-1])])
    pad_hi = np.concatenate([np.full(radius, hi[0]), hi, np.full(radius, hi[-1])])
    windows = np.lib.stride_tricks.sliding_window_view
    lo = windows(pad_lo, 2 * radius + 1).min(axis=1) - radius
    hi = windows(pad_hi, 2 * radius + 1).max(axis=1) + radius
    return np.clip(lo, 0, m - 1), np.clip(hi, 0, m - 1)


def _guide_points(coarse: np.ndarray, factor: int, n: int, m: int) -> np.ndarray:
    """Fine-grid points at the centres of the coarse path's cells, from (0, 0) to (n-1, m-1)."""
    centres = np.minimum(coarse * factor + factor // 2, [n - 1, m - 1])
    points = np.concatenate([[[0, 0]], centres, [[n - 1, m - 1]]])
    return np.maximum.accumulate(points, axis=0)


def _solve_tile(x, y, start, end, lo, hi, weights, onset_weight, soft_gamma) -> tuple[np.ndarray, np.ndarray | None]:
    """Path from ``start`` to ``end`` (inclusive, fine frames) inside the band: the optimal one
    (integer cells; spread None), or where ``soft_gamma > 0`` the expected column of every row
    (float) and its spread."""
    (n0, m0), (n1, m1) = start, end
    cost = sync_cost(x[n0:n1 + 1], y[m0:m1 + 1], onset_weight)
    columns = np.arange(m0, m1 + 1)[None, :]
    mask = (columns >= lo[n0:n1 + 1, None]) & (columns <= hi[n0:n1 + 1, None])
    mask[0, 0] = mask[-1, -1] = True
    if soft_gamma > 0:
        columns, spread = expected_columns(cost, soft_gamma, weights, mask)
        return _rows_and_columns(columns) + np.asarray([n0, m0]), spread
    return _dtw_path(cost, weights, mask=mask) + np.asarray([n0, m0]), None


def multiscale_path(x: np.ndarray, y: np.ndarray, *, factor: int, radius: int,
                    tile_frames: int = 400, weights=(1.0, 1.0, 1.0), onset_weight: float = 0.0,
                    soft_gamma: float = 0.0) -> tuple[np.ndarray, int, np.ndarray | None]:
    """Memory-bounded DTW path between ``x`` (N, D) and ``y`` (M, D).

    Args:
      x, y: feature sequences at the fine rate.
      factor: fine frames per coarse frame.
      radius: band half-width in fine frames.
      tile_frames: tile size in fine frames (memory ~ (2 * tile_frames)^2 cells at most).
      weights: DTW step weights.
      onset_weight: weight of the onset features at the fine level (:func:`sync_cost`); the coarse
        level compares block-averaged chroma only, as onsets do not survive averaging.
      soft_gamma: > 0: every tile's path is its expected alignment at this gamma (one float point
        per row, :func:`expected_columns` inside the band), the long-input form of
        :func:`expected_path`; 0: optimal paths. The coarse level is always optimal.

    Returns:
      ``(path, cells, spread)``: the ``(L, 2)`` fine path (integer, or float where soft, then
      between the corners as :func:`expected_path` returns it), the number of cost cells
      evaluated, and where soft the ``(N,)`` spread of every row within its tile
      (:func:`expected_columns`; None where hard).
    """
    n, m = len(x), len(y)
    xc, yc = block_mean(x[:, :CHROMA], factor), block_mean(y[:, :CHROMA], factor)
    coarse = sync_features(xc, yc, weights=weights)
    cells = len(xc) * len(yc)
    lo, hi = _band_from_coarse(coarse, factor, radius, n, m)
    guide = _guide_points(coarse, factor, n, m)
    guide_diagonal = guide.sum(axis=1)
    pieces, spreads = [], []
    position = np.zeros(2, dtype=np.int64)
    while True:
        d0 = int(position.sum())
        ahead = np.nonzero(guide_diagonal >= d0 + 2 * tile_frames)[0]
        last = len(ahead) == 0 or n + m - 2 - d0 <= 3 * tile_frames
        end = np.asarray([n - 1, m - 1]) if last else np.maximum(guide[ahead[0]], position)
        tile, spread = _solve_tile(x, y, position, end, lo, hi, weights, onset_weight, soft_gamma)
        cells += int((end[0] - position[0] + 1) * (end[1] - position[1] + 1))
        kept = len(tile) if last else int(np.sum(tile.sum(axis=1) < d0 + tile_frames)) - 1
        pieces.append(tile[:kept])
        spreads.append(None if spread is None else spread[:kept])   # a soft tile has one row per point
        if last:
            break
        position = np.round(tile[kept]).astype(np.int64)   # a soft tile's next start: the nearest cell
    if soft_gamma <= 0:
        return np.concatenate(pieces), cells, None
    return _between_corners(np.concatenate(pieces), n, m), cells, np.concatenate(spreads)


def linear_path(n: int, m: int) -> np.ndarray:
    """Diagonal (constant tempo ratio) path from (0, 0) to (n-1, m-1): the baseline."""
    length = max(n, m)
    a = np.round(np.linspace(0, n - 1, length)).astype(np.int64)
    b = np.round(np.linspace(0, m - 1, length)).astype(np.int64)
    return np.stack([a, b], axis=1)


def _segment(start: np.ndarray, stop: np.ndarray) -> np.ndarray:
    """Linear path from ``start`` to ``stop`` (frames, both included)."""
    return linear_path(int(stop[0] - start[0]) + 1, int(stop[1] - start[1]) + 1) + start


def _edge_knee(inner: np.ndarray, corner: np.ndarray, slope: float) -> np.ndarray:
    """Where a line from ``inner`` towards ``corner`` at ``slope`` frames of B per frame of A meets
    the row or column of ``corner`` (rounded to whole frames, between the two)."""
    direction = np.sign(corner - inner)
    rows, columns = np.abs(corner - inner).astype(np.float64)
    if columns >= slope * rows:      # meets A's first/last frame; B's rest of the silence is a run there
        step = np.asarray([rows, slope * rows])
    else:                            # meets B's first/last frame; A's rest of the silence runs along it
        step = np.asarray([columns / slope, columns])
    return inner + direction * np.round(step).astype(np.int64)


def edge_path(inner: np.ndarray, corner: np.ndarray, slope: float) -> np.ndarray:
    """Path from ``corner`` ((0, 0) or (N-1, M-1)) to ``inner``, the first or last frames where both
    sides sound, through the silence before or after the music.

    From ``inner`` the path keeps the music's tempo ratio ``slope`` (frames of B per frame of A)
    until it meets the row or column of ``corner``, then runs along it. A piece that starts with a
    rest has its first beat in that silence, as long before the first note as the rest lasts at
    the tempo of each side: a score's rest starts at 0 s, a recording's after a lead-in of any
    length, and a line from corner to corner would scale the rest by the ratio of the two
    silences instead (a first beat 1 s off where a recording's lead-in was 1 s).

    Returns:
      ``(L, 2)`` int path from the end nearest (0, 0) to the other, both ends included.
    """
    inner, corner = np.asarray(inner, np.int64), np.asarray(corner, np.int64)
    knee = _edge_knee(inner, corner, max(float(slope), 1e-9))
    start, middle, stop = (corner, knee, inner) if (corner <= inner).all() else (inner, knee, corner)
    return np.concatenate([_segment(start, middle)[:-1], _segment(middle, stop)])


def path_columns(path: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every frame of A on a warping path ``(L, 2)`` and the one position of B it maps to, ``(K,)`` each.

    Where the path runs horizontally (one frame of A to several of B) that is the mean B position,
    except on the first frame of A, which maps to the last B of its run, and on the last frame,
    which maps to the first: there a run is B's lead-in or tail (a score's first note at 0 s
    against a recording's silence before it), not a note held across it.
    """
    path = np.asarray(path, dtype=np.float64)
    a, inverse = np.unique(path[:, 0], return_inverse=True)
    b = np.bincount(inverse, weights=path[:, 1]) / np.bincount(inverse)
    b[0] = path[inverse == 0, 1].max()
    if len(a) > 1:
        b[-1] = path[inverse == len(a) - 1, 1].min()
    return a, b


def strong_onsets(onsets: np.ndarray, window: int, threshold: float) -> np.ndarray:
    """Frames whose onset strength ``(T,)`` is at least ``threshold`` times the largest within
    ``window`` frames around them (and above zero): the sorted ``(K,)`` frame indices."""
    onsets = np.asarray(onsets, dtype=np.float64)
    local = maximum_filter1d(onsets, size=2 * (window // 2) + 1, mode="constant")
    return np.nonzero((onsets > 0) & (onsets >= threshold * local))[0]


def anchor_at_onsets(path: np.ndarray, anchors: np.ndarray, n: int) -> np.ndarray:
    """The path's own points at the ``anchors`` (frames of A), joined by straight lines.

    Onsets are where the cost pins a path down. Between them, a held note gives it nothing to
    go by but how the instruments sustain and decay, which differs between versions, and beats
    inside the note have no evidence of their own: a constant tempo from one onset to the next
    is the better guess (on the embedded corpus it halves the errors of beats without an onset).

    Args:
      path: ``(L, 2)`` warping path from (0, 0) to (n-1, m-1), integer or fractional.
      anchors: ``(K,)`` frames of A to keep; the first and last frame are always kept.
      n: number of frames of A.

    Returns:
      ``(n + 2, 2)`` float path: one point per frame of A, between the corners of ``path`` (the
      form of :func:`expected_path`).
    """
    a, b = path_columns(path)
    if len(a) != n:
        raise ValueError(f"the path covers {len(a)} frames of A, expected {n}")
    keep = np.union1d(np.asarray(anchors, dtype=np.int64), [0, n - 1])
    straight = np.stack([a, np.interp(a, a[keep], b[keep])], axis=1)
    return np.concatenate([path[:1], straight, path[-1:]]).astype(np.float64)


def _core_path(x: np.ndarray, y: np.ndarray, config: SyncConfig) -> tuple[np.ndarray, int, np.ndarray | None]:
    """``(path, cells, spread)`` of ``x`` against ``y`` (spread: see :func:`multiscale_path`)."""
    if not config.multiscale:
        if config.soft_gamma > 0:
            cost = sync_cost(x, y, config.onset_weight)
            path, spread = _soft_path(cost, config.soft_gamma, config.weights)
            return path, cost.size, spread
        path = sync_features(x, y, weights=config.weights, onset_weight=config.onset_weight)
        return path, len(x) * len(y), None
    factor = int(round(config.rate_hz / config.coarse_rate_hz))
    if factor < 1 or abs(factor * config.coarse_rate_hz - config.rate_hz) > 1e-6:
        raise ValueError(f"rate_hz={config.rate_hz} must be an integer multiple of "
                         f"coarse_rate_hz={config.coarse_rate_hz}")
    radius = max(1, int(round(config.band_radius_s * config.rate_hz)))
    return multiscale_path(x, y, factor=factor, radius=radius, tile_frames=config.tile_frames,
                           weights=config.weights, onset_weight=config.onset_weight, soft_gamma=config.soft_gamma)


def align(x: np.ndarray, y: np.ndarray, config: SyncConfig = SyncConfig(), *,
          active_x: tuple[int, int] | None = None, active_y: tuple[int, int] | None = None,
          onsets_x: np.ndarray | None = None) -> SyncResult:
    """Align two feature sequences at ``config.rate_hz`` (full or multiscale).

    ``active_x`` and ``active_y`` (``[start, stop)`` frames, e.g. from
    :func:`experiments.sync.features.active_frames`) confine DTW to where there is music, so a
    lead-in or a release tail cannot pull the first or last beats: through the silence before and
    after, the path keeps the music's overall tempo ratio from its first and last sounding frames
    (:func:`edge_path`). ``onsets_x`` (``(N,)`` onset strength of every frame of x) and
    ``config.anchor_threshold > 0``: between those frames the path runs straight between its points
    at the strong onsets of x (:func:`anchor_at_onsets`).
    """
    started = time.perf_counter()
    n, m = len(x), len(y)
    (a0, a1), (b0, b1) = active_x or (0, n), active_y or (0, m)
    if not (0 <= a0 < a1 <= n and 0 <= b0 < b1 <= m):
        raise ValueError(f"active ranges {(a0, a1)}, {(b0, b1)} do not fit sequences of {n} and {m} frames")
    core, cells, spread = _core_path(x[a0:a1], y[b0:b1], config)  # int, or float where soft
    first, last = np.asarray([a0, b0]), np.asarray([a1 - 1, b1 - 1])
    slope = (b1 - b0) / (a1 - a0)
    path = np.concatenate([edge_path(first, np.zeros(2, np.int64), slope)[:-1], core + first,
                           edge_path(last, np.asarray([n - 1, m - 1]), slope)[1:]])
    if onsets_x is not None and config.anchor_threshold > 0:
        if len(onsets_x) != n:
            raise ValueError(f"onsets_x has {len(onsets_x)} frames, x has {n}")
        window = int(round(config.anchor_window_s * config.rate_hz))
        onsets = strong_onsets(onsets_x[a0:a1], window, config.anchor_threshold)
        if spread is not None and config.anchor_max_spread_s > 0:
            onsets = onsets[spread[onsets] <= config.anchor_max_spread_s * config.rate_hz]
        onsets = onsets + a0
        silence = np.concatenate([np.arange(a0 + 1), np.arange(a1 - 1, n)])  # keeps its edge paths
        path = anchor_at_onsets(path, np.concatenate([onsets, silence]), n)
    return SyncResult(path, config.rate_hz, time.perf_counter() - started, cells)

"""DTW alignment of feature sequences: full resolution or memory-bounded multiscale."""

from __future__ import annotations

import time

import numpy as np

from experiments.sync.config import SyncConfig, SyncResult

__all__ = ["align", "block_mean", "linear_path", "multiscale_path", "sync_features"]

# Cost matrices are padded to multiples of this size so the DTW kernel compiles once per bucket.
_TILE_BUCKET = 128


def _cosine_cost(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    import sdtw

    return np.asarray(sdtw.costs.cosine(np.asarray(x, np.float32), np.asarray(y, np.float32)))


def _bucket(size: int) -> int:
    return -(-size // _TILE_BUCKET) * _TILE_BUCKET


def _dtw_path(cost: np.ndarray, weights, mask: np.ndarray | None = None) -> np.ndarray:
    """:func:`sdtw.dtw_path` on ``cost`` zero-padded to a multiple of 128 a side.

    The padding (excluded through ``lengths``) lets the compiled kernel be
    reused for inputs of similar size instead of compiling once per shape.
    """
    import sdtw

    n, m = cost.shape
    padded = np.zeros((_bucket(n), _bucket(m)), dtype=np.float32)
    padded[:n, :m] = cost
    options = {"weights": tuple(weights), "lengths": (n, m)}
    if mask is not None:
        padded_mask = np.zeros(padded.shape, dtype=bool)
        padded_mask[:n, :m] = mask
        options["mask"] = padded_mask
    return np.asarray(sdtw.dtw_path(padded, **options), dtype=np.int64)


def sync_features(x: np.ndarray, y: np.ndarray, *, weights=(1.0, 1.0, 1.0)) -> np.ndarray:
    """Full-resolution DTW path between feature sequences ``x`` (N, D) and ``y`` (M, D).

    Allocates the whole (N, M) cost matrix: use :func:`multiscale_path` for long inputs.

    Returns:
      ``(L, 2)`` int path of (row of x, row of y).
    """
    return _dtw_path(_cosine_cost(x, y), weights)


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


def _solve_tile(x, y, start, end, lo, hi, weights) -> np.ndarray:
    """DTW path from ``start`` to ``end`` (inclusive, fine frames) inside the band."""
    (n0, m0), (n1, m1) = start, end
    cost = _cosine_cost(x[n0:n1 + 1], y[m0:m1 + 1])
    columns = np.arange(m0, m1 + 1)[None, :]
    mask = (columns >= lo[n0:n1 + 1, None]) & (columns <= hi[n0:n1 + 1, None])
    mask[0, 0] = mask[-1, -1] = True
    return _dtw_path(cost, weights, mask=mask) + np.asarray([n0, m0])


def multiscale_path(x: np.ndarray, y: np.ndarray, *, factor: int, radius: int,
                    tile_frames: int = 400, weights=(1.0, 1.0, 1.0)) -> tuple[np.ndarray, int]:
    """Memory-bounded DTW path between ``x`` (N, D) and ``y`` (M, D).

    Args:
      x, y: feature sequences at the fine rate.
      factor: fine frames per coarse frame.
      radius: band half-width in fine frames.
      tile_frames: tile size in fine frames (memory ~ (2 * tile_frames)^2 cells at most).
      weights: DTW step weights.

    Returns:
      ``(path, cells)``: the ``(L, 2)`` fine path and the number of cost cells evaluated.
    """
    n, m = len(x), len(y)
    xc, yc = block_mean(x, factor), block_mean(y, factor)
    coarse = sync_features(xc, yc, weights=weights)
    cells = len(xc) * len(yc)
    lo, hi = _band_from_coarse(coarse, factor, radius, n, m)
    guide = _guide_points(coarse, factor, n, m)
    guide_diagonal = guide.sum(axis=1)
    pieces = []
    position = np.zeros(2, dtype=np.int64)
    while True:
        d0 = int(position.sum())
        ahead = np.nonzero(guide_diagonal >= d0 + 2 * tile_frames)[0]
        last = len(ahead) == 0 or n + m - 2 - d0 <= 3 * tile_frames
        end = np.asarray([n - 1, m - 1]) if last else np.maximum(guide[ahead[0]], position)
        tile = _solve_tile(x, y, position, end, lo, hi, weights)
        cells += int((end[0] - position[0] + 1) * (end[1] - position[1] + 1))
        if last:
            pieces.append(tile)
            break
        keep = tile[tile.sum(axis=1) < d0 + tile_frames]
        pieces.append(keep[:-1])
        position = keep[-1]
    return np.concatenate(pieces), cells


def linear_path(n: int, m: int) -> np.ndarray:
    """Diagonal (constant tempo ratio) path from (0, 0) to (n-1, m-1): the baseline."""
    length = max(n, m)
    a = np.round(np.linspace(0, n - 1, length)).astype(np.int64)
    b = np.round(np.linspace(0, m - 1, length)).astype(np.int64)
    return np.stack([a, b], axis=1)


def align(x: np.ndarray, y: np.ndarray, config: SyncConfig = SyncConfig()) -> SyncResult:
    """Align two feature sequences at ``config.rate_hz`` (full or multiscale)."""
    started = time.perf_counter()
    if config.multiscale:
        factor = int(round(config.rate_hz / config.coarse_rate_hz))
        if factor < 1 or abs(factor * config.coarse_rate_hz - config.rate_hz) > 1e-6:
            raise ValueError(f"rate_hz={config.rate_hz} must be an integer multiple of "
                             f"coarse_rate_hz={config.coarse_rate_hz}")
        radius = max(1, int(round(config.band_radius_s * config.rate_hz)))
        path, cells = multiscale_path(x, y, factor=factor, radius=radius,
                                      tile_frames=config.tile_frames, weights=config.weights)
    else:
        path, cells = sync_features(x, y, weights=config.weights), len(x) * len(y)
    return SyncResult(path, config.rate_hz, time.perf_counter() - started, cells)

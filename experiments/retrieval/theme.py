"""Theme-based audio retrieval (Zalkow & Müller, IEEE/ACM TASLP 2021).

A symbolic monophonic theme (the first phrase of a piece's principal voice,
:class:`~experiments.data.types.Theme`) is the query; the database holds the
chroma features of every audio recording. The theme becomes a binary chroma
sequence at the feature rate and is matched anywhere in each recording with
subsequence DTW (:func:`matching_function`: step sizes (1,1), (2,1), (1,2),
cosine cost, each query frame counted once). Robustness:

- transposition: cyclic shifts of the query chroma, those that fit the
  recording's pitch-class profile best (:func:`transposition_candidates`);
- tempo: the query rendered at several tempo scalings (DTW absorbs the local
  deviations, the scalings the global ones); costs are divided by the
  query length, so scalings and recordings compare;

and a recording's distance is the minimum over shifts, scalings and end
positions. Recordings are ranked by it; Top-k accuracy asks whether a
recording of the query's piece is among the first k.

Hook for learned chroma (DNN rows of the seed's table): the database is any
mapping version id -> ``(T, 12)`` chroma at ``rate_hz``; :func:`chroma_database`
builds it from a function ``chroma_fn(audio, sr) -> (T, 12)``, so a trained
network's output plugs in exactly where :func:`standard_chroma` and
:func:`enhanced_chroma` do.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

import sdtw
from experiments import features, timebase
from experiments.data.types import NoteEvent, Piece
from experiments.retrieval import metrics

__all__ = [
    "ChromaExtractor",
    "NORMALIZATIONS",
    "THEME_TEMPO_SCALES",
    "ThemeRetrievalResult",
    "chroma_database",
    "enhanced_chroma",
    "evaluate_theme_retrieval",
    "evaluate_theme_retrievals",
    "match_theme",
    "matching_function",
    "standard_chroma",
    "theme_query",
    "transposition_candidates",
]

ChromaExtractor = Callable[[np.ndarray, int], np.ndarray]
"""``(audio (S,) float32, sample rate Hz) -> (T, 12)`` chroma at the retrieval rate."""

# Query durations relative to the score's nominal tempo (> 1: slower query).
THEME_TEMPO_SCALES: tuple[float, ...] = (0.7, 1.0, 1.4)


def theme_query(piece: Piece, rate_hz: float, scale: float = 1.0) -> np.ndarray:
    """Binary chroma ``(N, 12)`` of the theme at ``rate_hz``, ``scale`` times as long as at ``piece.qpm``."""
    theme = piece.theme
    seconds_per_q = 60.0 / piece.qpm * scale
    events = [NoteEvent((n.onset_q - theme.start_q) * seconds_per_q, (n.offset_q - theme.start_q) * seconds_per_q,
                        n.pitch, n.part) for n in theme.notes]
    n_frames = timebase.num_frames((theme.end_q - theme.start_q) * seconds_per_q, rate_hz)
    return features.notes_to_chroma(events, rate_hz, n_frames)


def standard_chroma(audio: np.ndarray, sr: int, *, rate_hz: float = 10.0) -> np.ndarray:
    """CQT chroma as librosa gives it (max-normalised frames): the "standard chromagram" row."""
    return features.chroma_cqt(audio, sr, rate_hz=rate_hz)


def enhanced_chroma(audio: np.ndarray, sr: int, *, rate_hz: float = 10.0, min_midi: int = 60,
                    gamma: float = 10.0, smooth_s: float = 0.3, analysis_hop: int = 512) -> np.ndarray:
    """Melody-enhanced chroma: the "enhanced chromagram (baseline)" row.

    Emphasises what a monophonic theme can match in a polyphonic recording:
    the CQT magnitude above MIDI ``min_midi`` only (principal voices usually
    lie above the accompaniment; a crude salience cue), log compression
    ``log(1 + gamma x)`` (Müller, FMP 3.1.2.1), folding to 12 pitch classes,
    a moving average over ``smooth_s`` seconds against short-time noise, and
    max-normalised frames.

    Returns:
      ``(T, 12)`` float32 at ``rate_hz``.
    """
    import librosa

    fmin = librosa.midi_to_hz(min_midi)
    n_octaves = max(1, int(np.floor(np.log2(0.45 * sr / fmin))))
    cqt = np.abs(librosa.cqt(audio, sr=sr, hop_length=analysis_hop, fmin=fmin, n_bins=12 * n_octaves,
                             bins_per_octave=12))
    cqt = np.log1p(gamma * cqt / max(float(cqt.max()), 1e-12))
    folded = cqt.reshape(n_octaves, 12, -1).sum(axis=0)                  # (12, frames); bin 0 = min_midi
    folded = np.roll(folded, min_midi % 12, axis=0)                       # row 0 = pitch class C
    width = max(1, int(round(smooth_s * sr / analysis_hop)))
    kernel = np.ones(width) / width
    folded = np.apply_along_axis(lambda row: np.convolve(row, kernel, mode="same"), 1, folded)
    n_target = timebase.num_frames(len(audio) / sr, rate_hz)
    chroma = timebase.resample_frames(folded.T.astype(np.float32), sr / analysis_hop, rate_hz, n_target)
    return chroma / np.maximum(chroma.max(axis=1, keepdims=True), 1e-12)


def chroma_database(versions, chroma_fn: ChromaExtractor, *, progress: bool = False) -> dict[str, np.ndarray]:
    """``version_id -> chroma_fn(audio, sr)`` for every version (loads each audio once).

    Spread over :func:`experiments.workers.map_in_workers`' processes, so with several workers
    ``chroma_fn`` must be picklable (a module-level function such as :func:`standard_chroma`).
    """
    from experiments.workers import map_in_workers

    chroma = map_in_workers(_chroma_job, [(v, chroma_fn) for v in versions], desc="chroma", progress=progress)
    return dict(zip((v.version_id for v in versions), chroma))


def _chroma_job(job: tuple) -> np.ndarray:
    version, chroma_fn = job
    return np.asarray(chroma_fn(version.load_audio(), version.sample_rate), np.float32)


NORMALIZATIONS = ("query", "recording")


def matching_function(cost: jax.Array, query_length: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Subsequence DTW with step sizes (1, 1), (2, 1), (1, 2), every query frame counted once.

    ``D(i, j) = min(D(i-1, j-1) + C(i, j),
                    D(i-2, j-1) + C(i-1, j) + C(i, j),
                    D(i-1, j-2) + (C(i, j-1) + C(i, j)) / 2)``, ``D(0, j) = C(0, j)``.

    The step sizes are those of Müller (FMP, Sec. 7.2.3): they bound the local tempo ratio
    to [1/2, 2], which the query's tempo scalings complement. Unweighted, a (2, 1) step
    would skip a query frame, so a path could leave out half of the query and its cost per
    frame would mean little; here each query frame adds the cost of its own column (the
    mean of its two columns on a (1, 2) step), and ``D(n-1, e) / n`` is the mean cost per
    query frame. Every cell depends on the two rows above only, so the recursion runs row
    by row with whole rows (of every problem in the batch) as vectors: ``N`` steps instead
    of the ``N + M`` anti-diagonals of the general kernel.

    Args:
      cost: ``(..., N, M)`` local costs; rows past ``query_length`` are ignored.
      query_length: ``n <= N``, the query's true length.

    Returns:
      ``(delta (..., M), starts (..., M))``: ``D(n-1, e)``, the cost of the best alignment of
      the whole query ending at column ``e`` (+inf where none), and its start column.
    """
    m = cost.shape[-1]
    rows = jnp.moveaxis(cost, -2, 0)                      # (N, ..., M): the scan runs over rows
    inf = jnp.full(rows.shape[1:-1] + (1,), jnp.inf, cost.dtype)
    none = jnp.full(rows.shape[1:-1] + (1,), -1, jnp.int32)

    def shift(row, fill, by=1):  # row[..., j - by], ``fill`` before the start
        return jnp.concatenate([jnp.repeat(fill, by, axis=-1), row[..., :-by]], axis=-1)

    # The row above and the row index ride in the carry: scanning over shifted copies of the
    # cost instead streams it from memory twice (1.4x slower on a CPU).
    def step(carry, row):
        d1, d2, s1, s2, above, delta, starts, i = carry
        diagonal = shift(d1, inf) + row
        vertical = shift(d2, inf) + above + row
        horizontal = shift(d1, inf, 2) + 0.5 * (shift(row, inf) + row)
        d0 = jnp.minimum(jnp.minimum(diagonal, vertical), horizontal)
        s0 = jnp.where(d0 == diagonal, shift(s1, none), jnp.where(d0 == vertical, shift(s2, none),
                                                                   shift(s1, none, 2)))
        last = i == query_length - 1
        return (d0, d1, s0, s1, row, jnp.where(last, d0, delta), jnp.where(last, s0, starts), i + 1), None

    columns = jnp.broadcast_to(jnp.arange(m, dtype=jnp.int32), rows.shape[1:])
    unreached = jnp.broadcast_to(inf, rows.shape[1:])
    init = (rows[0], unreached, columns, jnp.broadcast_to(none, rows.shape[1:]), rows[0],
            jnp.where(query_length == 1, rows[0], unreached), columns, jnp.int32(1))
    (*_, delta, starts, _), _ = jax.lax.scan(step, init, rows[1:])
    return delta, starts


@functools.partial(jax.jit, static_argnames=("normalize",))
def _match_padded(queries: jax.Array, query_length: jax.Array, database: jax.Array, db_lengths: jax.Array,
                  normalize: str = "query"):
    """Best match in each padded item (V, M, 12) of its own S shifted queries (V, S, N, 12).

    Returns (V,) distance, start and end frames (see :func:`match_theme` for ``normalize``).
    """
    cost = jax.vmap(lambda shifts, item: jax.vmap(lambda q: sdtw.costs.cosine(q, item))(shifts))(queries, database)
    delta, starts = matching_function(cost, query_length)                                        # (V, S, M)
    valid = (jnp.arange(delta.shape[-1])[None] < db_lengths[:, None])[:, None]                   # (V, 1, M)
    delta = jnp.where(valid, delta / query_length, jnp.inf)
    if normalize == "recording":
        reached = valid & jnp.isfinite(delta)  # the first columns cannot end a whole query
        delta = delta / jnp.nanmedian(jnp.where(reached, delta, jnp.nan), axis=-1, keepdims=True)
    flat, flat_starts = delta.reshape(delta.shape[0], -1), starts.reshape(delta.shape[0], -1)    # (V, S M)
    best = jnp.argmin(flat, axis=1)
    rows = jnp.arange(flat.shape[0])
    return flat[rows, best], flat_starts[rows, best], best % delta.shape[-1]


def _pad_to(length: int, multiple: int) -> int:
    return -(-length // multiple) * multiple


def transposition_candidates(query: np.ndarray, item: np.ndarray, count: int) -> np.ndarray:
    """The ``count`` cyclic shifts of the query whose pitch-class profile (mean chroma) agrees best
    with the item's: the optimal transposition index (Serrà, Gómez & Herrera 2008), best first."""
    profile, target = query.mean(axis=0), item.mean(axis=0)
    agreement = [float(np.roll(profile, shift) @ target) for shift in range(12)]
    return np.argsort(agreement, kind="stable")[::-1][:count]


def match_theme(variants: Sequence[np.ndarray], database: Sequence[np.ndarray], *,
                normalize: str = "query", transpositions: int = 3, item_chunk: int = 16,
                pad_multiple: int = 32, item_pad_multiple: int = 128
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Best match of a query (several tempo variants, each ``(N, 12)``) in every item.

    Args:
      variants: tempo variants of one query.
      database: items ``(M_v, 12)`` at the query's rate.
      normalize: how costs are made comparable. ``"query"``: the subsequence-DTW cost per
        query frame (:func:`matching_function`). ``"recording"``: that, divided by its median
        over the item's end positions, so a recording that resembles every query a little
        (one voice, dense chroma) no longer ranks first for all of them: what counts is how
        much better the best match is than the recording's typical match. On the train and
        val pieces of the default corpus, ``"query"`` ranked better (Top-1 0.18 vs 0.13 with
        standard chroma, 56 themes), so it is the default.
      transpositions: cyclic shifts of the query tried per item: the ``k`` whose pitch-class
        profile fits the item best (:func:`transposition_candidates`; ``12 / k`` times less
        work than all 12).
      item_chunk: items per device call (bounds memory to ``k * item_chunk * N * M``); items of
        similar length go together.
      pad_multiple, item_pad_multiple: query and item lengths are padded up to a multiple of
        these (fewer recompilations; padding is excluded through ``lengths``).

    Returns:
      ``(distance (V,), start_frame (V,), end_frame (V,))``: minimum over tempo
      variants and the tried shifts of the normalized subsequence-DTW cost.
    """
    if normalize not in NORMALIZATIONS:
        raise ValueError(f"normalize must be one of {NORMALIZATIONS}, got {normalize!r}")
    if not 1 <= transpositions <= 12:
        raise ValueError(f"transpositions must be in 1..12, got {transpositions}")
    n_items = len(database)
    lengths = np.array([len(x) for x in database])
    shifts = np.stack([transposition_candidates(np.concatenate(variants), item, transpositions) for item in database])
    # Items of similar length share a call, padded to the longest of them only (and to a multiple
    # of ``item_pad_multiple``, so that few shapes compile).
    order = np.argsort(lengths, kind="stable")
    chunks = []
    for first in range(0, n_items, item_chunk):
        chunk = order[first:first + item_chunk]
        padded = np.zeros((len(chunk), _pad_to(int(lengths[chunk].max()), item_pad_multiple), 12), np.float32)
        for row, v in enumerate(chunk):
            padded[row, : lengths[v]] = database[v]
        chunks.append((chunk, jnp.asarray(padded), jnp.asarray(lengths[chunk])))
    best = np.full(n_items, np.inf, np.float32)
    start = np.zeros(n_items, np.int64)
    end = np.zeros(n_items, np.int64)
    for query in variants:
        n = len(query)
        q = np.zeros((_pad_to(n, pad_multiple), 12), np.float32)
        q[:n] = query
        shifted = np.stack([np.roll(q, shift, axis=1) for shift in range(12)])             # (12, N, 12)
        for chunk, padded, chunk_lengths in chunks:
            queries = jnp.asarray(shifted[shifts[chunk]])                                   # (V, k, N, 12)
            d, s, e = map(np.asarray, _match_padded(queries, jnp.int32(n), padded, chunk_lengths, normalize))
            better = d < best[chunk]
            best[chunk] = np.where(better, d, best[chunk])
            start[chunk] = np.where(better, s, start[chunk])
            end[chunk] = np.where(better, e, end[chunk])
    return best, start, end


@dataclasses.dataclass(frozen=True)
class ThemeRetrievalResult:
    """Outcome of theme retrieval over a corpus.

    Attributes:
      top1, top10: Top-k accuracy (a version of the query's piece within the first k); Top-10
        is NaN where 10 reaches the number of non-relevant recordings (it could not fail).
      map: mean average precision (relevant = every version of the query's piece).
      top1_ci, map_ci: 95% bootstrap intervals over the queries.
      queries, items: number of theme queries and of recordings searched.
      position_accuracy: over (query, version of its piece) pairs, the fraction
        whose best match overlaps the ground-truth theme location.
      distances: ``(Q, V)`` distance of each query to each version.
      query_ids, version_ids: row and column labels.
    """

    top1: float
    top10: float
    map: float
    position_accuracy: float
    distances: np.ndarray
    query_ids: tuple[str, ...]
    version_ids: tuple[str, ...]
    top1_ci: tuple[float, float] = (float("nan"), float("nan"))
    map_ci: tuple[float, float] = (float("nan"), float("nan"))

    @property
    def queries(self) -> int:
        return len(self.query_ids)

    @property
    def items(self) -> int:
        return len(self.version_ids)


def _overlaps(a0, a1, b0, b1) -> bool:
    return min(a1, b1) > max(a0, b0)


def evaluate_theme_retrieval(corpus, database: Mapping[str, np.ndarray], rate_hz: float, *,
                             scales: Sequence[float] = THEME_TEMPO_SCALES, normalize: str = "query",
                             progress: bool = False) -> ThemeRetrievalResult:
    """One query per piece (its theme) against ``database`` (version id -> ``(T, 12)`` at ``rate_hz``);
    ``normalize`` as in :func:`match_theme`."""
    return evaluate_theme_retrievals({None: (corpus, database)}, rate_hz, scales=scales, normalize=normalize,
                                     progress=progress)[None]


def evaluate_theme_retrievals(tables: Mapping[object, tuple[object, Mapping[str, np.ndarray]]], rate_hz: float, *,
                              scales: Sequence[float] = THEME_TEMPO_SCALES, normalize: str = "query",
                              progress: bool = False) -> dict[object, ThemeRetrievalResult]:
    """:func:`evaluate_theme_retrieval` of several ``(corpus, database)`` pairs (e.g. chroma
    variants): name -> result.

    Every (table, query) is one job for :func:`experiments.workers.map_in_workers`, so with
    several workers the queries of all tables share one pool (its processes start and compile
    once, not once per table). The databases reach the workers as files, each read once per worker.
    """
    import tempfile

    from experiments.workers import map_in_workers

    plans = {name: _ThemePlan.of(corpus, database) for name, (corpus, database) in tables.items()}
    with tempfile.TemporaryDirectory(prefix="sdtw-theme-") as folder:
        jobs = []
        for number, plan in enumerate(plans.values()):
            path = f"{folder}/{number}.npz"
            np.savez(path, *plan.items)
            jobs += [(path, [theme_query(piece, rate_hz, s) for s in scales], normalize) for piece in plan.pieces]
        matches = iter(map_in_workers(_match_theme_job, jobs, desc="theme queries", progress=progress))
        _saved_items.cache_clear()  # in this process (one worker) it would keep the files' arrays alive
        return {name: plan.result([next(matches) for _ in plan.pieces], rate_hz) for name, plan in plans.items()}


@functools.lru_cache(maxsize=2)
def _saved_items(path: str) -> list[np.ndarray]:
    with np.load(path) as saved:
        return [saved[f"arr_{i}"] for i in range(len(saved.files))]


def _match_theme_job(job: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`match_theme` of ``(items file, query variants, normalize)`` (a worker's job)."""
    path, variants, normalize = job
    return match_theme(variants, _saved_items(path), normalize=normalize)


@dataclasses.dataclass(frozen=True)
class _ThemePlan:
    """The queries (pieces with a theme) and items (recordings) of one theme table."""

    pieces: list
    versions: list
    items: list[np.ndarray]

    @classmethod
    def of(cls, corpus, database: Mapping[str, np.ndarray]) -> "_ThemePlan":
        versions = [corpus.version(vid) for vid in database]
        return cls([p for p in corpus.pieces.values() if p.theme.notes], versions,
                   [database[v.version_id] for v in versions])

    def result(self, matches: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
               rate_hz: float) -> ThemeRetrievalResult:
        """Metrics of the ``(distance, start, end)`` of every query."""
        distances = np.array([distance for distance, _, _ in matches], np.float32).reshape(-1, len(self.versions))
        on_theme = [_overlaps(start[v] / rate_hz, (end[v] + 1) / rate_hz, version.theme_start_s, version.theme_end_s)
                    for piece, (_, start, end) in zip(self.pieces, matches)
                    for v, version in enumerate(self.versions) if version.piece_id == piece.piece_id]
        relevant = np.array([[v.piece_id == p.piece_id for v in self.versions] for p in self.pieces])
        per_query = metrics.per_query_metrics(-distances, relevant, ks=(1, 10))
        can_fail = 10 < (~relevant).sum(axis=1).min()  # else a relevant item is always within the first 10
        return ThemeRetrievalResult(
            float(np.nanmean(per_query["top1"])),
            float(np.nanmean(per_query["top10"])) if can_fail else float("nan"),
            float(np.nanmean(per_query["ap"])), float(np.mean(on_theme)) if on_theme else float("nan"), distances,
            tuple(p.piece_id for p in self.pieces), tuple(v.version_id for v in self.versions),
            metrics.bootstrap_interval(per_query["top1"]), metrics.bootstrap_interval(per_query["ap"]))

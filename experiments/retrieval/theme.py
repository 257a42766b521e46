"""Theme-based audio retrieval (Zalkow & Müller, IEEE/ACM TASLP 2021).

A symbolic monophonic theme (the first phrase of a piece's principal voice,
:class:`~experiments.data.types.Theme`) is the query; the database holds the
chroma features of every audio recording. The theme becomes a binary chroma
sequence at the feature rate and is matched anywhere in each recording with
subsequence DTW (:func:`sdtw.subsequence_dtw`, cosine cost). Robustness:

- transposition: the 12 cyclic shifts of the query chroma;
- tempo: the query rendered at several tempo scalings (DTW absorbs the local
  deviations, the scalings the global ones); costs are normalised by the
  query length so scalings compare;

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
    "THEME_TEMPO_SCALES",
    "ThemeRetrievalResult",
    "chroma_database",
    "enhanced_chroma",
    "evaluate_theme_retrieval",
    "match_theme",
    "standard_chroma",
    "theme_query",
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
    """``version_id -> chroma_fn(audio, sr)`` for every version (loads each audio once)."""
    from tqdm.auto import tqdm

    return {v.version_id: np.asarray(chroma_fn(v.load_audio(), v.sample_rate), np.float32)
            for v in tqdm(versions, desc="chroma", disable=not progress)}


@functools.partial(jax.jit, static_argnames=())
def _match_padded(shifted: jax.Array, query_length: jax.Array, database: jax.Array, db_lengths: jax.Array):
    """Best match of 12 shifted queries (12, N, 12) in each padded item (V, M, 12).

    Returns (V,) distance (per query frame), start and end frames.
    """
    def one(query, item, item_length):
        cost = sdtw.costs.cosine(query, item)
        delta, starts = sdtw.subsequence_dtw(cost, lengths=(query_length, item_length))
        return delta / query_length, starts

    per_item = jax.vmap(one, in_axes=(None, 0, 0))
    delta, starts = jax.vmap(per_item, in_axes=(0, None, None))(shifted, database, db_lengths)  # (12, V, M)
    flat = jnp.transpose(delta, (1, 0, 2)).reshape(delta.shape[1], -1)                           # (V, 12 M)
    best = jnp.argmin(flat, axis=1)
    end = best % delta.shape[2]
    start = jnp.transpose(starts, (1, 0, 2)).reshape(delta.shape[1], -1)[jnp.arange(flat.shape[0]), best]
    return flat[jnp.arange(flat.shape[0]), best], start, end


def _pad_to(length: int, multiple: int) -> int:
    return -(-length // multiple) * multiple


def match_theme(variants: Sequence[np.ndarray], database: Sequence[np.ndarray], *,
                item_chunk: int = 16, pad_multiple: int = 32) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Best match of a query (several tempo variants, each ``(N, 12)``) in every item.

    Args:
      variants: tempo variants of one query.
      database: items ``(M_v, 12)`` at the query's rate.
      item_chunk: items per device call (bounds memory to ``12 * item_chunk * N * M``).
      pad_multiple: query and item lengths are padded up to a multiple of this
        (fewer recompilations; padding is excluded through ``lengths``).

    Returns:
      ``(distance (V,), start_frame (V,), end_frame (V,))``: minimum over tempo
      variants and the 12 cyclic shifts of the length-normalised subsequence-DTW cost.
    """
    n_items = len(database)
    lengths = np.array([len(x) for x in database])
    width = _pad_to(int(lengths.max()), pad_multiple)
    padded = np.zeros((n_items, width, 12), np.float32)
    for v, item in enumerate(database):
        padded[v, : len(item)] = item
    best = np.full(n_items, np.inf, np.float32)
    start = np.zeros(n_items, np.int64)
    end = np.zeros(n_items, np.int64)
    for query in variants:
        n = len(query)
        q = np.zeros((_pad_to(n, pad_multiple), 12), np.float32)
        q[:n] = query
        shifted = np.stack([np.roll(q, shift, axis=1) for shift in range(12)])
        for first in range(0, n_items, item_chunk):
            chunk = slice(first, min(first + item_chunk, n_items))
            d, s, e = map(np.asarray, _match_padded(jnp.asarray(shifted), jnp.int32(n),
                                                    jnp.asarray(padded[chunk]), jnp.asarray(lengths[chunk])))
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
                             scales: Sequence[float] = THEME_TEMPO_SCALES, progress: bool = False
                             ) -> ThemeRetrievalResult:
    """One query per piece (its theme) against ``database`` (version id -> ``(T, 12)`` at ``rate_hz``)."""
    from tqdm.auto import tqdm

    versions = [corpus.version(vid) for vid in database]
    items = [database[v.version_id] for v in versions]
    pieces = [p for p in corpus.pieces.values() if p.theme.notes]
    distances = np.zeros((len(pieces), len(versions)), np.float32)
    on_theme = []
    for q, piece in enumerate(tqdm(pieces, desc="theme queries", disable=not progress)):
        variants = [theme_query(piece, rate_hz, s) for s in scales]
        distances[q], start, end = match_theme(variants, items)
        for v, version in enumerate(versions):
            if version.piece_id == piece.piece_id:
                on_theme.append(_overlaps(start[v] / rate_hz, (end[v] + 1) / rate_hz,
                                          version.theme_start_s, version.theme_end_s))
    relevant = np.array([[v.piece_id == p.piece_id for v in versions] for p in pieces])
    per_query = metrics.per_query_metrics(-distances, relevant, ks=(1, 10))
    can_fail = 10 < (~relevant).sum(axis=1).min()  # else a relevant item is always within the first 10
    return ThemeRetrievalResult(
        float(np.nanmean(per_query["top1"])), float(np.nanmean(per_query["top10"])) if can_fail else float("nan"),
        float(np.nanmean(per_query["ap"])), float(np.mean(on_theme)) if on_theme else float("nan"), distances,
        tuple(p.piece_id for p in pieces), tuple(v.version_id for v in versions),
        metrics.bootstrap_interval(per_query["top1"]), metrics.bootstrap_interval(per_query["ap"]))

"""Audio matching (Müller, Kurth, Clausen, ISMIR 2005): a short excerpt vs a whole database.

Query and database are CENS features (chroma smoothed over 4.1 s at 10 Hz,
then taken at ``rate_hz``, about 1 Hz). Global tempo differences are handled
by R tempo-scaled variants of the query (:mod:`experiments.retrieval.tempo`);
local ones by the smoothing. Each variant is compared with every database
position, giving a matching curve Delta(m) in [0, 1] (0 = identical); the
curve of the database is the minimum over variants, and its local minima,
taken greedily with a minimum gap between them, are the ranked hits.

Two ways to compare a variant with the database (``method``):

- ``"diagonal"`` (the 2005 paper): Delta(m) = mean over n of
  1 - <q_n, y_{m+n}>, the query laid along the diagonal from frame m.
- ``"dtw"``: subsequence DTW (:func:`sdtw.subsequence_dtw`) with the cosine
  cost, normalised by the query length; Delta indexed by the end frame.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

import sdtw
from experiments.retrieval.tempo import TEMPO_SCALES, tempo_variants, unit_rows

__all__ = [
    "Hit",
    "MatchingCurve",
    "MatchingEvaluation",
    "diagonal_matching",
    "evaluate_audio_matching",
    "item_distances",
    "match_database",
    "matching_curve",
    "ranked_hits",
]


@dataclasses.dataclass(frozen=True)
class Hit:
    """A match: database item, span in seconds (inclusive frames), distance in [0, 1], and for
    fingerprint matches the confidence (``-log10`` chance of a false match; None otherwise)."""

    item_id: str
    start_s: float
    end_s: float
    distance: float
    confidence: float | None = None


@dataclasses.dataclass(frozen=True)
class MatchingCurve:
    """Matching curve of one database item.

    Attributes:
      distance: ``(M,)`` Delta, +inf where no variant fits.
      start, end: ``(M,)`` int first and last database frame of the match at each position.
      rate_hz: frame rate of the database features.
    """

    distance: np.ndarray
    start: np.ndarray
    end: np.ndarray
    rate_hz: float


@jax.jit
def diagonal_matching(query: jax.Array, database: jax.Array, length: jax.Array | None = None) -> jax.Array:
    """Delta(m) = 1 - mean_n <q_n, y_{m+n}> for unit-norm rows: ``(N, 12), (M, 12) -> (M,)``.

    Positions where the query would run past the end of the database (its first ``length``
    rows when given, e.g. when it is padded) get +inf.
    """
    n, m = query.shape[0], database.shape[0]
    length = m if length is None else length
    similarity = query @ database.T                                   # (N, M)
    columns = jnp.arange(m)[:, None] + jnp.arange(n)[None, :]         # (M, N): diagonal from m
    fits = columns[:, -1] < length
    along = similarity[jnp.arange(n)[None, :], jnp.minimum(columns, m - 1)]
    return jnp.where(fits, 1.0 - along.mean(axis=1), jnp.inf)


@jax.jit
def _dtw_matching(query: jax.Array, database: jax.Array, length: jax.Array) -> tuple[jax.Array, jax.Array]:
    delta, starts = sdtw.subsequence_dtw(sdtw.costs.cosine(query, database), lengths=(query.shape[0], length))
    return delta / query.shape[0], starts


DATABASE_PAD = 64  # items are zero-padded to a multiple of this many frames: few shapes compile


def matching_curve(variants: Sequence[np.ndarray], database: np.ndarray, rate_hz: float, *,
                   method: str = "diagonal") -> MatchingCurve:
    """Minimum over the query variants of their matching curves against one item ``(M, 12)``."""
    m = database.shape[0]
    best = np.full(m, np.inf, np.float32)
    start = np.zeros(m, np.int64)
    end = np.zeros(m, np.int64)
    y = jnp.asarray(np.pad(unit_rows(database), ((0, -m % DATABASE_PAD), (0, 0))))
    for variant in variants:
        q = jnp.asarray(unit_rows(variant))
        if method == "diagonal":
            delta = np.asarray(diagonal_matching(q, y, m))[:m]
            s, e = np.arange(m), np.arange(m) + len(variant) - 1
        elif method == "dtw":
            delta, s = (np.asarray(a)[:m] for a in _dtw_matching(q, y, m))
            e = np.arange(m)
        else:
            raise ValueError(f"method must be 'diagonal' or 'dtw', got {method!r}")
        better = delta < best
        best, start, end = np.where(better, delta, best), np.where(better, s, start), np.where(better, e, end)
    return MatchingCurve(best, start, end, rate_hz)


def match_database(query: np.ndarray, query_rate_hz: float, database: Mapping[str, np.ndarray],
                   rate_hz: float, *, scales: Sequence[float] = TEMPO_SCALES,
                   method: str = "diagonal") -> dict[str, MatchingCurve]:
    """Matching curves of a query ``(N, 12)`` at ``query_rate_hz`` (e.g. CENS at 10 Hz)
    against every item of ``database`` (id -> ``(M, 12)`` at ``rate_hz``)."""
    variants = [v for v in tempo_variants(query, query_rate_hz, rate_hz, scales) if len(v) >= 2]
    if not variants:
        raise ValueError(f"query of {len(query)} frames at {query_rate_hz} Hz is too short to match at {rate_hz} Hz")
    return {item: matching_curve(variants, frames, rate_hz, method=method) for item, frames in database.items()}


def ranked_hits(curves: Mapping[str, MatchingCurve], *, max_hits: int = 20, min_gap_s: float = 10.0,
                max_distance: float = np.inf) -> list[Hit]:
    """Best matches over the whole database, by increasing distance.

    Greedy: take the smallest value of a curve, then ignore the positions of
    that item closer than ``min_gap_s`` to it (one match is not counted
    twice at neighbouring positions), repeat.
    """
    hits = []
    for item, curve in curves.items():
        distance = curve.distance.astype(np.float64).copy()
        gap = max(1, int(round(min_gap_s * curve.rate_hz)))
        for _ in range(max_hits):
            i = int(np.argmin(distance))
            if not np.isfinite(distance[i]) or distance[i] > max_distance:
                break
            hits.append(Hit(item, float(curve.start[i] / curve.rate_hz), float(curve.end[i] / curve.rate_hz),
                            float(distance[i])))
            distance[max(0, i - gap + 1): i + gap] = np.inf
    return sorted(hits, key=lambda h: h.distance)[:max_hits]


def item_distances(curves: Mapping[str, MatchingCurve]) -> np.ndarray:
    """Best distance per item ``(V,)`` in the order of ``curves`` (for document-level ranking)."""
    return np.array([float(np.min(c.distance)) for c in curves.values()], np.float32)




@dataclasses.dataclass(frozen=True)
class MatchingEvaluation:
    """Audio matching over a corpus, every version's opening as a query.

    Attributes:
      p_at_1, map: document level (a version's distance = its curve's minimum;
        relevant = the other versions of the same piece; the query's own version is left out).
      position_accuracy: over (query, relevant version) pairs, the fraction whose
        best match overlaps the ground-truth position of the query's passage.
      example_query: id of the first query; ``example_hits`` its ranked hits and
        ``example_curves`` its matching curves (for the report's figure).
      p_at_1_ci, map_ci: 95% bootstrap intervals over the queries; queries, items: their counts.
    """

    p_at_1: float
    map: float
    position_accuracy: float
    query_seconds: float
    example_query: str
    example_hits: list
    example_curves: dict
    p_at_1_ci: tuple[float, float] = (float("nan"), float("nan"))
    map_ci: tuple[float, float] = (float("nan"), float("nan"))
    queries: int = 0
    items: int = 0


def evaluate_audio_matching(corpus, cens_10hz: Mapping[str, np.ndarray], *, query_seconds: float = 20.0,
                            rate_hz: float = 1.0, source_rate_hz: float = 10.0,
                            scales: Sequence[float] = TEMPO_SCALES, method: str = "diagonal",
                            min_gap_s: float | None = None) -> MatchingEvaluation:
    """Each version's first ``query_seconds`` (CENS at ``source_rate_hz``) vs every version at ``rate_hz``.

    Ground truth: the query's span, mapped to score time by its version's
    time map and back to audio time by each other version's.
    """

    from experiments.retrieval import metrics
    from experiments.retrieval.tempo import scale_tempo

    ids = list(cens_10hz)
    versions = [corpus.version(i) for i in ids]
    database = {i: scale_tempo(cens_10hz[i], source_rate_hz, rate_hz, 1.0) for i in ids}
    min_gap_s = query_seconds / 2 if min_gap_s is None else min_gap_s
    scores = np.zeros((len(ids), len(ids)), np.float32)
    relevant = np.zeros((len(ids), len(ids)), bool)
    on_position, example = [], None
    for q, version in enumerate(versions):
        n = int(round(query_seconds * source_rate_hz))
        curves = match_database(cens_10hz[version.version_id][:n], source_rate_hz, database, rate_hz,
                                scales=scales, method=method)
        scores[q] = -item_distances(curves)
        scores[q, q] = -np.inf
        span_q = version.time_map.to_quarters([0.0, min(query_seconds, version.duration_s)])
        for v, other in enumerate(versions):
            if v == q or other.piece_id != version.piece_id:
                continue
            relevant[q, v] = True
            curve = curves[other.version_id]
            best = int(np.argmin(curve.distance))
            truth = other.time_map.to_seconds(span_q)
            on_position.append(min(curve.end[best] + 1, truth[1] * rate_hz) > max(curve.start[best], truth[0] * rate_hz))
        if example is None:
            example = (version.version_id, ranked_hits(curves, min_gap_s=min_gap_s), curves)
    finite = np.where(np.isfinite(scores), scores, -1e9)
    summary = metrics.retrieval_summary(finite, relevant, ks=(1,))
    return MatchingEvaluation(summary["p@1"], summary["map"],
                              float(np.mean(on_position)) if on_position else float("nan"),
                              query_seconds, *example, summary["p@1_ci95"], summary["map_ci95"],
                              summary["queries"], summary["items"])

"""Shingle-based version identification (Grosche & Müller 2012; Zalkow & Müller 2020).

A shingle is ``length`` consecutive CENS frames (default 20 x 12 = 240
dimensions), flattened and scaled to unit length, so Euclidean distance is a
monotone function of the cosine distance. The database holds every shingle
of every recording (hop 1 frame); a query is one shingle of a recording in R
tempo-scaled variants (:mod:`experiments.retrieval.tempo`). A database
recording scores the smallest distance among its shingles returned by the
k-NN search for any variant; the recordings of the same piece (other than
the query's own) are the relevant ones.

Hook for learned embeddings: every function takes ``embed``, a function
``(S, length * 12) -> (S, d)`` applied to database and query shingles
(Zalkow & Müller 2020 train it with a triplet loss); :func:`pca_embedding` is
the classical baseline.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable, Mapping, Sequence

import numpy as np

from experiments import timebase
from experiments.retrieval import index as indexes
from experiments.retrieval import metrics
from experiments.retrieval.tempo import TEMPO_SCALES, scale_tempo, unit_rows

__all__ = [
    "Embedding",
    "ShingleDatabase",
    "build_shingle_database",
    "corpus_shingle_queries",
    "embed_all",
    "make_shingles",
    "pca_embedding",
    "query_shingles",
    "recording_shingles",
    "version_identification",
]

Embedding = Callable[[np.ndarray], np.ndarray]
"""Maps shingles ``(S, length * 12)`` to embeddings ``(S, d)``."""


def make_shingles(frames: np.ndarray, length: int = 20, hop: int = 1) -> np.ndarray:
    """All shingles of a feature sequence: ``(T, 12)`` -> ``(S, length * 12)`` unit-norm rows.

    ``S = (T - length) // hop + 1``, zero when ``T < length``.
    """
    frames = np.asarray(frames, np.float32)
    if frames.shape[0] < length:
        return np.zeros((0, length * frames.shape[1]), np.float32)
    starts = np.arange(0, frames.shape[0] - length + 1, hop)
    windows = frames[starts[:, None] + np.arange(length)[None, :]]   # (S, length, 12)
    return unit_rows(windows.reshape(len(starts), -1))


def recording_shingles(frames: np.ndarray, source_rate_hz: float, *, rate_hz: float = 1.0, length: int = 20,
                       hop: int = 1) -> np.ndarray:
    """The shingles of one recording: ``(T, 12)`` CENS at ``source_rate_hz``, resampled to
    ``rate_hz``, -> ``(S, length * 12)`` unit-norm rows (what the database holds and embedders learn)."""
    return make_shingles(scale_tempo(frames, source_rate_hz, rate_hz, 1.0), length, hop)


@dataclasses.dataclass(frozen=True)
class ShingleDatabase:
    """Shingles of a set of recordings.

    Attributes:
      vectors: ``(S, length * 12)`` unit-norm shingles.
      owner: ``(S,)`` index into ``item_ids`` of the recording each shingle comes from.
      start_frame: ``(S,)`` first frame of each shingle at ``rate_hz``.
      item_ids: recording ids.
      rate_hz: frame rate of the shingles' frames.
      length: frames per shingle.
    """

    vectors: np.ndarray
    owner: np.ndarray
    start_frame: np.ndarray
    item_ids: tuple[str, ...]
    rate_hz: float
    length: int


def build_shingle_database(features: Mapping[str, np.ndarray], source_rate_hz: float, *,
                           rate_hz: float = 1.0, length: int = 20, hop: int = 1) -> ShingleDatabase:
    """Shingles of every recording: ``features`` maps id -> ``(T, 12)`` at ``source_rate_hz``
    (smoothed chroma such as CENS at 10 Hz), resampled to ``rate_hz`` first."""
    vectors, owner, starts = [], [], []
    for i, frames in enumerate(features.values()):
        s = recording_shingles(frames, source_rate_hz, rate_hz=rate_hz, length=length, hop=hop)
        vectors.append(s)
        owner.append(np.full(len(s), i, np.int64))
        starts.append(np.arange(len(s), dtype=np.int64) * hop)
    if not any(len(v) for v in vectors):
        raise ValueError(f"no recording is long enough for one shingle of {length} frames at {rate_hz} Hz "
                         f"({length / rate_hz:.1f} s)")
    return ShingleDatabase(np.concatenate(vectors), np.concatenate(owner), np.concatenate(starts),
                           tuple(features), float(rate_hz), int(length))


def query_shingles(frames: np.ndarray, source_rate_hz: float, start_s: float, *, rate_hz: float = 1.0,
                   length: int = 20, scales: Sequence[float] = TEMPO_SCALES) -> np.ndarray:
    """The shingle starting at ``start_s`` in R tempo variants: ``(R', length * 12)``.

    Variant ``s`` covers ``length / (rate_hz * s)`` seconds of the query
    recording, so it matches a database passage played ``s`` times slower.
    Variants that would run past the end of ``frames`` are left out (R' <= R).
    """
    variants = []
    for scale in scales:
        scaled = scale_tempo(frames, source_rate_hz, rate_hz, scale)
        first = int(timebase.seconds_to_frames(start_s, rate_hz * scale))
        if first + length <= scaled.shape[0]:
            variants.append(make_shingles(scaled[first:first + length], length))
    if not variants:
        return np.zeros((0, length * frames.shape[1]), np.float32)
    return np.concatenate(variants)


def pca_embedding(vectors: np.ndarray, dim: int) -> Embedding:
    """Classical PCA fitted on ``vectors`` (S, D): returns ``x -> (x - mean) @ P`` with ``(S', dim)`` output."""
    mean = vectors.mean(axis=0, keepdims=True)
    _, _, vt = np.linalg.svd(vectors - mean, full_matrices=False)
    projection = vt[:dim].T.astype(np.float32)
    return lambda x: ((np.asarray(x, np.float32) - mean) @ projection).astype(np.float32)


def version_identification(database: ShingleDatabase, queries: Sequence[np.ndarray],
                           query_items: Sequence[int], relevant: np.ndarray, *, index_kind: str = "hnsw",
                           k: int = 100, embed: Embedding | None = None,
                           index_options: Mapping | None = None) -> dict:
    """Rank the database recordings for every query; P@1, MAP and query time.

    Args:
      database: the shingles of every recording.
      queries: per query, ``(R, D)`` shingle variants (:func:`query_shingles`).
      query_items: per query, the index in ``database.item_ids`` of the
        recording it was cut from (that recording is left out of the ranking).
      relevant: ``(Q, V)`` bool, V = number of recordings.
      index_kind: ``"brute"``, ``"kdtree"`` or ``"hnsw"``.
      k: neighbours retrieved per query variant.
      embed: optional shingles -> embeddings map (raw shingles if None).

    Returns:
      dict with ``p@1``, ``map``, ``query_ms`` (per query, all variants),
      ``build_s``, ``dim``, ``shingles`` and the score matrix ``scores`` (Q, V).
    """
    database, queries = embed_all(database, queries, embed)
    vectors = database.vectors
    start = time.perf_counter()
    nn = indexes.make_index(index_kind, **dict(index_options or {})).build(vectors)
    build_s = time.perf_counter() - start
    n_items = len(database.item_ids)
    scores = np.full((len(queries), n_items), -np.inf, np.float32)
    variants = list(queries)
    nn.search(variants[0][:1], k)  # warm-up: compile the brute-force kernel (k is static) outside the timing
    start = time.perf_counter()
    found = [nn.search(v, k) if len(v) else None for v in variants]
    query_ms = 1000.0 * (time.perf_counter() - start) / max(len(queries), 1)
    for q, result in enumerate(found):
        if result is None:
            continue
        distances, ids = result
        owners = database.owner[ids.ravel()]
        # A recording's score: minus the distance of its nearest retrieved shingle.
        np.maximum.at(scores[q], owners, -distances.ravel())
    scores[np.arange(len(queries)), np.asarray(query_items)] = -np.inf
    finite = np.where(np.isfinite(scores), scores, -1e9)  # not retrieved: last, below every retrieved one
    mask = np.asarray(relevant, bool).copy()
    mask[np.arange(len(queries)), np.asarray(query_items)] = False
    summary = metrics.retrieval_summary(finite, mask, ks=(1,))
    return {"p@1": summary["p@1"], "map": summary["map"], "p@1_ci95": summary["p@1_ci95"],
            "map_ci95": summary["map_ci95"], "query_ms": query_ms, "build_s": build_s, "dim": vectors.shape[1],
            "shingles": len(vectors), "queries": summary["queries"], "items": n_items, "scores": finite}


def embed_all(database: ShingleDatabase, queries: Sequence[np.ndarray], embed: Embedding | None):
    """(database, queries) with ``embed`` applied to every shingle (unchanged when it is None), so
    that several indexes can search one embedding. The queries' variants go through ``embed`` in
    one call (a network runs one big batch)."""
    if embed is None:
        return database, list(queries)
    sizes = np.cumsum([len(q) for q in queries])[:-1]
    return (dataclasses.replace(database, vectors=embed(database.vectors)),
            np.split(embed(np.concatenate(queries)), sizes))


def corpus_shingle_queries(corpus, cens: Mapping[str, np.ndarray], source_rate_hz: float, *,
                           rate_hz: float = 1.0, length: int = 20, query_hop_s: float = 10.0,
                           scales: Sequence[float] = TEMPO_SCALES):
    """Queries of every version: the shingles starting every ``query_hop_s`` seconds (R variants each).

    Returns:
      ``(queries, query_items, relevant)`` for :func:`version_identification`;
      relevant = versions of the same piece.
    """
    ids = list(cens)
    pieces = [corpus.version(i).piece_id for i in ids]
    queries, owners = [], []
    for i, vid in enumerate(ids):
        duration_s = (len(cens[vid]) - 1) / source_rate_hz
        for start_s in np.arange(0.0, max(duration_s - length / rate_hz, 0.0) + 1e-9, query_hop_s):
            q = query_shingles(cens[vid], source_rate_hz, float(start_s), rate_hz=rate_hz, length=length,
                               scales=scales)
            if len(q):
                queries.append(q)
                owners.append(i)
    relevant = np.array([[pieces[j] == pieces[i] for j in range(len(ids))] for i in owners], bool)
    return queries, owners, relevant.reshape(len(owners), len(ids))

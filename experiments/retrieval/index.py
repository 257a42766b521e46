"""Nearest-neighbour indexes over fixed-length vectors (shingles, embeddings).

Three interchangeable indexes with one interface, ``build(vectors)`` then
``search(queries, k) -> (distances (Q, k), ids (Q, k))``, Euclidean distances,
nearest first:

- :class:`BruteForceIndex`: exact, on device with jnp; the database is cut
  into chunks of ``chunk_size`` rows and a running top-k is merged chunk by
  chunk, so memory is ``O(query_chunk * chunk_size)`` whatever the database size.
- :class:`KDTreeIndex`: exact, scipy's ``cKDTree`` (fast in low dimensions,
  slow in 240).
- :class:`HNSWIndex`: approximate, hnswlib's hierarchical navigable small
  world graph (Malkov & Yashunin, IEEE TPAMI 2020); saved and loaded with
  hnswlib's own format.

Zalkow, Brandner, Müller (Signals 2021) compare KD-trees and HNSW for
shingle retrieval; :func:`time_indexes` repeats that comparison.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "BruteForceIndex",
    "HNSWIndex",
    "INDEXES",
    "KDTreeIndex",
    "make_index",
    "recall_at_k",
    "time_indexes",
]


def _as_matrix(vectors, name: str) -> np.ndarray:
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty (N, D) array, got shape {vectors.shape}")
    return vectors


@functools.partial(jax.jit, static_argnames=("k",))
def _brute_force_topk(queries: jax.Array, chunks: jax.Array, chunk_norms: jax.Array, k: int):
    """Exact k-NN of ``queries`` (Q, D) in ``chunks`` (C, S, D).

    ``chunk_norms`` (C, S) holds ``||x||^2`` of every row, +inf on padding rows, which therefore
    never win. Scans the chunks: the best k of a chunk are merged with the best k so far (a top-k
    over 2k columns), so no (Q, S) block is copied.
    """
    q_norm = jnp.sum(queries * queries, axis=1, keepdims=True)
    chunk_rows = chunks.shape[1]
    chunk_k = min(k, chunk_rows)

    def step(best, inputs):
        best_d, best_i = best
        index, chunk, norms = inputs
        # ||q - x||^2 = ||q||^2 - 2 q.x + ||x||^2: one matrix product per chunk.
        neg, pos = jax.lax.top_k(2.0 * queries @ chunk.T - q_norm - norms[None, :], chunk_k)
        all_d = jnp.concatenate([best_d, -neg], axis=1)
        all_i = jnp.concatenate([best_i, index * chunk_rows + pos.astype(jnp.int32)], axis=1)
        neg, pos = jax.lax.top_k(-all_d, k)
        return (-neg, jnp.take_along_axis(all_i, pos, axis=1)), None

    init = (jnp.full((queries.shape[0], k), jnp.inf, queries.dtype),
            jnp.full((queries.shape[0], k), -1, jnp.int32))
    (best_d, best_i), _ = jax.lax.scan(step, init, (jnp.arange(chunks.shape[0]), chunks, chunk_norms))
    return jnp.sqrt(jnp.maximum(best_d, 0.0)), best_i  # rounding can take a distance below 0


class BruteForceIndex:
    """Exact search on device (jnp), chunked over the database and the queries.

    Args:
      chunk_size: database rows per step of the scan; default 262,144 on a GPU, 16,384 elsewhere.
      query_chunk: at most this many queries per device call; default 4,096 on a GPU, 1,024
        elsewhere. A call is padded to the next power of two (at least 8) of its queries, so few
        shapes compile and a single query does not pay for a whole block.

    The defaults are the fastest settings measured by ``benchmarks/exact_search.py`` (on a GPU,
    within 1.25x of one matmul + top_k over the whole database, whose (Q, N) distances a GPU's
    memory holds at once; on two CPU cores, at or below it): a GPU wants few, large steps.
    """

    name = "brute force (jnp)"

    def __init__(self, *, chunk_size: int | None = None, query_chunk: int | None = None):
        on_gpu = jax.default_backend() == "gpu"
        self.chunk_size = chunk_size or (262_144 if on_gpu else 16_384)
        self.query_chunk = query_chunk or (4_096 if on_gpu else 1_024)
        self._chunks = None

    def build(self, vectors) -> "BruteForceIndex":
        vectors = _as_matrix(vectors, "vectors")
        self.size, self.dim = vectors.shape
        rows = min(self.chunk_size, self.size)
        n_chunks = -(-self.size // rows)
        padded = np.zeros((n_chunks * rows, self.dim), np.float32)
        padded[: self.size] = vectors
        norms = np.full(n_chunks * rows, np.inf, np.float32)
        norms[: self.size] = np.sum(padded[: self.size] ** 2, axis=1)
        self._chunks = jnp.asarray(padded.reshape(n_chunks, rows, self.dim))
        self._norms = jnp.asarray(norms.reshape(n_chunks, rows))
        return self

    def search(self, queries, k: int) -> tuple[np.ndarray, np.ndarray]:
        queries = _as_matrix(queries, "queries")
        k = min(int(k), self.size)
        blocks = []  # every block is dispatched before any result is read back: no host round trip between them
        for start in range(0, queries.shape[0], self.query_chunk):
            q = queries[start:start + self.query_chunk]
            pad = max(8, 1 << (len(q) - 1).bit_length()) - len(q)
            blocks.append((len(q), _brute_force_topk(jnp.asarray(np.pad(q, ((0, pad), (0, 0)))), self._chunks,
                                                     self._norms, k)))
        distances = np.concatenate([np.asarray(d)[:n] for n, (d, _) in blocks])
        ids = np.concatenate([np.asarray(i)[:n] for n, (_, i) in blocks])
        return distances, ids.astype(np.int64)


class KDTreeIndex:
    """Exact search with scipy's ``cKDTree``."""

    name = "KD-tree (scipy)"

    def __init__(self, *, leafsize: int = 16, workers: int = 1):
        self.leafsize = leafsize
        self.workers = workers

    def build(self, vectors) -> "KDTreeIndex":
        from scipy.spatial import cKDTree

        vectors = _as_matrix(vectors, "vectors")
        self.size, self.dim = vectors.shape
        self._tree = cKDTree(vectors, leafsize=self.leafsize)
        return self

    def search(self, queries, k: int) -> tuple[np.ndarray, np.ndarray]:
        k = min(int(k), self.size)
        d, i = self._tree.query(_as_matrix(queries, "queries"), k=k, workers=self.workers)
        return np.asarray(d, np.float32).reshape(-1, k), np.asarray(i, np.int64).reshape(-1, k)


class HNSWIndex:
    """Approximate search with hnswlib (Malkov & Yashunin 2020).

    Args:
      M: graph degree (links per node); more = better recall, more memory.
      ef_construction: candidate list size while building.
      ef_search: candidate list size while searching (raised to k if smaller).
      threads: threads for building and searching (1 gives reproducible graphs).
      seed: random seed of the level assignment.
    """

    name = "HNSW (hnswlib)"

    def __init__(self, *, M: int = 16, ef_construction: int = 200, ef_search: int = 64,
                 threads: int = 1, seed: int = 0):
        self.M, self.ef_construction, self.ef_search = M, ef_construction, ef_search
        self.threads, self.seed = threads, seed

    def build(self, vectors) -> "HNSWIndex":
        import hnswlib

        vectors = _as_matrix(vectors, "vectors")
        self.size, self.dim = vectors.shape
        self._index = hnswlib.Index(space="l2", dim=self.dim)
        self._index.init_index(max_elements=self.size, M=self.M, ef_construction=self.ef_construction,
                               random_seed=self.seed)
        self._index.add_items(vectors, np.arange(self.size), num_threads=self.threads)
        return self

    def save(self, path: str | Path) -> None:
        self._index.save_index(str(path))

    @classmethod
    def load(cls, path: str | Path, dim: int, **options) -> "HNSWIndex":
        import hnswlib

        index = cls(**options)
        index._index = hnswlib.Index(space="l2", dim=dim)
        index._index.load_index(str(path))
        index.size, index.dim = index._index.get_current_count(), dim
        return index

    def search(self, queries, k: int) -> tuple[np.ndarray, np.ndarray]:
        k = min(int(k), self.size)
        self._index.set_ef(max(self.ef_search, k))
        ids, squared = self._index.knn_query(_as_matrix(queries, "queries"), k=k, num_threads=self.threads)
        return np.sqrt(np.maximum(squared, 0.0)).astype(np.float32), ids.astype(np.int64)


INDEXES = {"brute": BruteForceIndex, "kdtree": KDTreeIndex, "hnsw": HNSWIndex}


def make_index(kind: str, **options):
    """``"brute"``, ``"kdtree"`` or ``"hnsw"`` -> an unbuilt index."""
    if kind not in INDEXES:
        raise ValueError(f"unknown index {kind!r}; choose one of {sorted(INDEXES)}")
    return INDEXES[kind](**options)


def recall_at_k(found_ids: np.ndarray, true_ids: np.ndarray) -> float:
    """Mean fraction of the true k nearest neighbours (Q, k) that ``found_ids`` (Q, k) contains."""
    hits = [len(set(f.tolist()) & set(t.tolist())) for f, t in zip(found_ids, true_ids)]
    return float(np.sum(hits) / true_ids.size)


def time_indexes(vectors, queries, *, k: int = 10, kinds: Sequence[str] = ("brute", "kdtree", "hnsw"),
                 options: dict | None = None) -> list[dict]:
    """Build and query every index; recall@k against the brute-force result.

    Query time is wall time per query with all queries in one batch call
    (one thread for KD-tree and HNSW), after a warm-up call that compiles the
    brute-force kernel.

    Returns:
      one dict per index: ``index``, ``size``, ``dim``, ``build_s``, ``query_ms``
      (per query), ``recall@k``.
    """
    vectors, queries = _as_matrix(vectors, "vectors"), _as_matrix(queries, "queries")
    options = options or {}
    results, truth = [], None
    for kind in ("brute", *[k_ for k_ in kinds if k_ != "brute"]):
        index = make_index(kind, **options.get(kind, {}))
        start = time.perf_counter()
        index.build(vectors)
        build_s = time.perf_counter() - start
        # Warm-up (compilation, caches) on the timed batch's shape: brute force compiles per query block size.
        index.search(queries if kind == "brute" else queries[:1], k)
        start = time.perf_counter()
        _, ids = index.search(queries, k)
        query_ms = 1000.0 * (time.perf_counter() - start) / len(queries)
        if truth is None:
            truth = ids
        if kind in kinds:
            results.append({"index": index.name, "size": len(vectors), "dim": vectors.shape[1],
                            "build_s": build_s, "query_ms": query_ms, f"recall@{k}": recall_at_k(ids, truth)})
    return results

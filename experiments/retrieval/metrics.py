"""Retrieval metrics on device: P@k, MAP, Top-k accuracy and recall@k.

Every metric reads a ``(Q, I)`` score matrix (Q queries, I database items,
higher score = better match; pass ``-distances`` for distances) and a boolean
``(Q, I)`` relevance mask. Items are ranked per query by descending score
(ties broken by item index, as a stable sort does), then the relevance of the
ranked list gives every metric at once:

- ``P@k``: fraction of relevant items among the first k.
- ``AP``: mean of P@r over the ranks r of the relevant items (Manning et al.,
  "Introduction to Information Retrieval", sec. 8.4); MAP is its mean over
  queries. Equals ``sklearn.metrics.average_precision_score`` when scores
  have no ties.
- ``Top-k accuracy``: 1 if at least one relevant item is among the first k
  (the Top-1 / Top-10 of theme retrieval, Zalkow & Müller 2021).
- ``recall@k``: fraction of the relevant items found among the first k.

The jitted kernel sees ``chunk_size`` queries at a time (the last chunk is
padded, so it compiles once), so memory is ``O(chunk_size * I)`` whatever Q is.
Queries without any relevant item get NaN and are left out of the means.
:func:`bootstrap_interval` gives the uncertainty of a mean over queries.
"""

from __future__ import annotations

import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "average_precision",
    "bootstrap_interval",
    "per_query_metrics",
    "precision_at_k",
    "recall_at_k",
    "retrieval_summary",
    "top_k_accuracy",
]


@functools.partial(jax.jit, static_argnames=("ks",))
def _chunk_metrics(scores: jax.Array, relevant: jax.Array, ks: tuple[int, ...]) -> dict[str, jax.Array]:
    """Metrics of one chunk: ``scores``/``relevant`` (B, I) -> dict of (B,) arrays."""
    order = jnp.argsort(-scores, axis=1, stable=True)
    ranked = jnp.take_along_axis(relevant, order, axis=1).astype(jnp.float32)  # (B, I)
    hits = jnp.cumsum(ranked, axis=1)                                         # relevant in first r
    ranks = jnp.arange(1, scores.shape[1] + 1, dtype=jnp.float32)[None, :]
    n_relevant = hits[:, -1]
    defined = n_relevant > 0
    safe_n = jnp.where(defined, n_relevant, 1.0)
    nan = jnp.float32(jnp.nan)
    out = {"ap": jnp.where(defined, jnp.sum(ranked * hits / ranks, axis=1) / safe_n, nan)}
    for k in ks:
        k_eff = min(k, scores.shape[1])
        found = hits[:, k_eff - 1]
        out[f"p@{k}"] = jnp.where(defined, found / k, nan)
        out[f"top{k}"] = jnp.where(defined, (found > 0).astype(jnp.float32), nan)
        out[f"recall@{k}"] = jnp.where(defined, found / safe_n, nan)
    return out


def per_query_metrics(scores, relevant, *, ks: Sequence[int] = (1, 10),
                      chunk_size: int = 256) -> dict[str, np.ndarray]:
    """Every metric per query.

    Args:
      scores: ``(Q, I)`` float, higher = more similar.
      relevant: ``(Q, I)`` bool, True where item i is relevant to query q.
      ks: cut-offs k of P@k, Top-k accuracy and recall@k.
      chunk_size: queries per device call (bounds memory to ``chunk_size * I``).

    Returns:
      dict ``"ap"``, ``"p@k"``, ``"top{k}"``, ``"recall@k"`` (for each k) -> ``(Q,)``
      float arrays, NaN for queries without relevant items.
    """
    scores = np.asarray(scores, dtype=np.float32)
    relevant = np.asarray(relevant, dtype=bool)
    if scores.ndim != 2 or scores.shape != relevant.shape:
        raise ValueError(f"scores and relevant must be (Q, I) of one shape, got {scores.shape} and {relevant.shape}")
    if scores.shape[1] == 0:
        raise ValueError("scores has no items (I = 0)")
    ks = tuple(int(k) for k in ks)
    if any(k < 1 for k in ks):
        raise ValueError(f"every k must be >= 1, got {ks}")
    n_queries = scores.shape[0]
    chunk_size = max(1, min(chunk_size, n_queries))
    parts = []
    for start in range(0, n_queries, chunk_size):
        s, r = scores[start:start + chunk_size], relevant[start:start + chunk_size]
        pad = chunk_size - s.shape[0]
        if pad:  # same shape for every chunk: one compilation
            s = np.pad(s, ((0, pad), (0, 0)))
            r = np.pad(r, ((0, pad), (0, 0)))
        chunk = _chunk_metrics(jnp.asarray(s), jnp.asarray(r), ks)
        parts.append({name: np.asarray(v)[: chunk_size - pad] for name, v in chunk.items()})
    if not parts:
        return {name: np.zeros(0, np.float32) for name in _metric_names(ks)}
    return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}


def _metric_names(ks):
    return ["ap"] + [f"{m}{k}" for k in ks for m in ("p@", "top", "recall@")]


def retrieval_summary(scores, relevant, *, ks: Sequence[int] = (1, 10), chunk_size: int = 256) -> dict:
    """Means over queries ``{"map", "p@k", "top{k}", "recall@k"}``, their 95% bootstrap intervals
    (``"<name>_ci95"``: (low, high)), and the counts ``"queries"`` (with a relevant item) and ``"items"``."""
    per_query = per_query_metrics(scores, relevant, ks=ks, chunk_size=chunk_size)
    summary = {}
    for name, values in per_query.items():
        name = "map" if name == "ap" else name
        summary[name], summary[f"{name}_ci95"] = _nanmean(values), bootstrap_interval(values)
    summary["queries"] = int(np.sum(~np.isnan(per_query["ap"])))
    summary["items"] = int(np.shape(scores)[1])
    return summary


def bootstrap_interval(per_query, *, level: float = 0.95, resamples: int = 2000,
                       seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``per_query`` ``(Q,)`` values (NaN left out):
    the queries are resampled with replacement ``resamples`` times (Efron & Tibshirani 1993)."""
    values = np.asarray(per_query, np.float64)
    values = values[~np.isnan(values)]
    if values.size == 0:
        return float("nan"), float("nan")
    draws = np.random.default_rng(seed).integers(0, values.size, (resamples, values.size))
    low, high = np.quantile(values[draws].mean(axis=1), [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def _nanmean(values: np.ndarray) -> float:
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else float("nan")


def average_precision(scores, relevant, *, chunk_size: int = 256) -> np.ndarray:
    """Average precision per query ``(Q,)`` (NaN without relevant items)."""
    return per_query_metrics(scores, relevant, ks=(1,), chunk_size=chunk_size)["ap"]


def precision_at_k(scores, relevant, k: int, *, chunk_size: int = 256) -> np.ndarray:
    """P@k per query ``(Q,)``: relevant items among the first k, divided by k."""
    return per_query_metrics(scores, relevant, ks=(k,), chunk_size=chunk_size)[f"p@{k}"]


def top_k_accuracy(scores, relevant, k: int, *, chunk_size: int = 256) -> np.ndarray:
    """1.0 per query ``(Q,)`` where a relevant item is ranked within the first k, else 0.0."""
    return per_query_metrics(scores, relevant, ks=(k,), chunk_size=chunk_size)[f"top{k}"]


def recall_at_k(scores, relevant, k: int, *, chunk_size: int = 256) -> np.ndarray:
    """Recall@k per query ``(Q,)``: fraction of the relevant items among the first k."""
    return per_query_metrics(scores, relevant, ks=(k,), chunk_size=chunk_size)[f"recall@{k}"]

"""Shared fixtures: a tiny corpus built once per session in a temporary folder."""

from __future__ import annotations

import types

import numpy as np
import pytest

import sdtw


def _numpy_dtw_path(C, *, mask=None, weights=(1.0, 1.0, 1.0), lengths=None, **unused):
    """Reference DTW (plain numpy) with the options of ``sdtw.dtw_path``; used only
    when the ``sdtw`` package of this checkout does not provide the kernel yet."""
    C = np.asarray(C, dtype=np.float64)
    n, m = lengths if lengths is not None else C.shape
    cost = np.where(np.asarray(mask)[:n, :m], C[:n, :m], np.inf) if mask is not None else C[:n, :m].copy()
    w_v, w_h, w_d = weights
    D = np.full((n, m), np.inf)
    D[0, 0] = cost[0, 0]
    for i in range(n):
        for j in range(m):
            if i == j == 0:
                continue
            best = min(D[i - 1, j] + w_v * cost[i, j] if i else np.inf,
                       D[i, j - 1] + w_h * cost[i, j] if j else np.inf,
                       D[i - 1, j - 1] + w_d * cost[i, j] if i and j else np.inf)
            D[i, j] = best
    i, j, path = n - 1, m - 1, [(n - 1, m - 1)]
    while (i, j) != (0, 0):
        options = []
        if i and j:
            options.append((D[i - 1, j - 1] + w_d * cost[i, j], i - 1, j - 1))
        if i:
            options.append((D[i - 1, j] + w_v * cost[i, j], i - 1, j))
        if j:
            options.append((D[i, j - 1] + w_h * cost[i, j], i, j - 1))
        _, i, j = min(options)
        path.append((i, j))
    return np.asarray(path[::-1])


def _numpy_cosine(x, y, eps=1e-8):
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), eps)
    y = y / np.maximum(np.linalg.norm(y, axis=1, keepdims=True), eps)
    return 1.0 - x @ y.T


if not hasattr(sdtw, "dtw_path"):  # pragma: no cover - only before the kernels exist
    sdtw.dtw_path = _numpy_dtw_path
    sdtw.costs = types.SimpleNamespace(cosine=_numpy_cosine)


@pytest.fixture(scope="session")
def tiny_config(tmp_path_factory):
    from experiments.data.corpus import CorpusConfig

    return CorpusConfig(name="tiny", pieces=("bach/bwv66.6", "bach/bwv1.6"), versions_per_piece=2,
                        max_measures=5, theme_measures=2,
                        cache_dir=str(tmp_path_factory.mktemp("corpus-cache")))


@pytest.fixture(scope="session")
def tiny_corpus(tiny_config):
    from experiments.data.corpus import build_corpus

    return build_corpus(tiny_config, progress=False)

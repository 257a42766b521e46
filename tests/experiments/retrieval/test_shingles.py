"""Shingles: shapes, unit norm, tempo variants, version identification on the tiny corpus."""

import numpy as np
import pytest

from experiments.retrieval import shingles


def test_make_shingles_shapes_and_norm():
    frames = np.random.default_rng(0).random((25, 12)).astype(np.float32)
    s = shingles.make_shingles(frames, length=20, hop=2)
    assert s.shape == (3, 240)
    np.testing.assert_allclose(np.linalg.norm(s, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(s[1], frames[2:22].ravel() / np.linalg.norm(frames[2:22]), rtol=1e-5)
    assert shingles.make_shingles(frames[:10], length=20).shape == (0, 240)


def test_query_variants_cover_scaled_durations():
    frames = np.random.default_rng(1).random((400, 12)).astype(np.float32)  # 40 s at 10 Hz
    q = shingles.query_shingles(frames, 10.0, 0.0, rate_hz=1.0, length=20, scales=(0.4, 0.66, 1.0, 1.5))
    assert q.shape == (3, 240)  # the 0.4 variant would need 20 / 0.4 = 50 s of query: left out


def test_pca_embedding_keeps_dimension():
    x = np.random.default_rng(2).normal(size=(50, 240)).astype(np.float32)
    assert shingles.pca_embedding(x, 6)(x[:4]).shape == (4, 6)


@pytest.mark.parametrize("kind", ["brute", "kdtree", "hnsw"])
def test_version_identification_on_tiny(tiny_corpus, tiny_cens, kind):
    cens = tiny_cens
    database = shingles.build_shingle_database(cens, 10.0, rate_hz=3.0)
    queries, owners, relevant = shingles.corpus_shingle_queries(tiny_corpus, cens, 10.0, rate_hz=3.0,
                                                                query_hop_s=3.0)
    assert len(queries) > 0 and relevant.shape == (len(queries), len(cens))
    result = shingles.version_identification(database, queries, owners, relevant, index_kind=kind)
    assert result["p@1"] >= 0.9
    # The query's own recording is never ranked first.
    assert np.all(np.argmax(result["scores"], axis=1) != np.asarray(owners))

"""Nearest-neighbour indexes: exact ones agree with numpy, HNSW recall vs brute force."""

import numpy as np
import pytest

from experiments.retrieval import index


def _numpy_knn(vectors, queries, k):
    d = np.linalg.norm(queries[:, None, :] - vectors[None, :, :], axis=2)
    ids = np.argsort(d, axis=1)[:, :k]
    return np.take_along_axis(d, ids, axis=1), ids


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(1000, 24)).astype(np.float32), rng.normal(size=(37, 24)).astype(np.float32)


@pytest.mark.parametrize("kind", ["brute", "kdtree"])
def test_exact_indexes_equal_numpy(data, kind):
    vectors, queries = data
    # chunk_size 300 does not divide 1000 and query_chunk 16 does not divide 37: padding must not leak.
    options = {"chunk_size": 300, "query_chunk": 16} if kind == "brute" else {}
    d, ids = index.make_index(kind, **options).build(vectors).search(queries, 5)
    d_ref, ids_ref = _numpy_knn(vectors, queries, 5)
    np.testing.assert_array_equal(ids, ids_ref)
    np.testing.assert_allclose(d, d_ref, rtol=1e-4, atol=1e-4)


def test_brute_force_with_chunks_smaller_than_k(data):
    vectors, queries = data
    d, ids = index.BruteForceIndex(chunk_size=3).build(vectors[:50]).search(queries, 7)
    d_ref, ids_ref = _numpy_knn(vectors[:50], queries, 7)
    np.testing.assert_array_equal(ids, ids_ref)
    np.testing.assert_allclose(d, d_ref, rtol=1e-4, atol=1e-4)


def test_hnsw_recall_against_brute_force(data, tmp_path):
    vectors, queries = data
    _, truth = index.BruteForceIndex().build(vectors).search(queries, 10)
    hnsw = index.HNSWIndex(ef_search=100).build(vectors)
    _, found = hnsw.search(queries, 10)
    assert index.recall_at_k(found, truth) >= 0.95
    path = tmp_path / "index.bin"
    hnsw.save(path)
    _, reloaded = index.HNSWIndex.load(path, dim=vectors.shape[1], ef_search=100).search(queries, 10)
    np.testing.assert_array_equal(reloaded, found)


def test_recall_counts_overlap():
    assert index.recall_at_k(np.array([[1, 2, 3]]), np.array([[3, 4, 1]])) == pytest.approx(2 / 3)


def test_time_indexes_reports_every_index(data):
    vectors, queries = data
    rows = index.time_indexes(vectors, queries, k=10)
    assert [r["index"] for r in rows] == [index.BruteForceIndex.name, index.KDTreeIndex.name, index.HNSWIndex.name]
    assert rows[0]["recall@10"] == 1.0 and rows[1]["recall@10"] == 1.0
    assert all(r["query_ms"] > 0 for r in rows)


def test_empty_database_is_refused():
    with pytest.raises(ValueError, match="non-empty"):
        index.BruteForceIndex().build(np.zeros((0, 4)))

"""Retrieval metrics against hand-computed values and scikit-learn."""

import numpy as np
import pytest

from experiments.retrieval import metrics

# One query, five items ranked by score: relevant at ranks 1, 3 and 5.
SCORES = np.array([[0.9, 0.1, 0.8, 0.3, 0.5]])   # ranking: items 0, 2, 4, 3, 1
RELEVANT = np.array([[True, True, False, False, True]])  # ranks 1 (item 0), 3 (item 4), 5 (item 1)


class TestHandComputed:
    def test_average_precision(self):
        expected = (1 / 1 + 2 / 3 + 3 / 5) / 3
        np.testing.assert_allclose(metrics.average_precision(SCORES, RELEVANT), [expected], rtol=1e-6)

    def test_precision_at_k(self):
        np.testing.assert_allclose(metrics.precision_at_k(SCORES, RELEVANT, 1), [1.0])
        np.testing.assert_allclose(metrics.precision_at_k(SCORES, RELEVANT, 2), [0.5])
        np.testing.assert_allclose(metrics.precision_at_k(SCORES, RELEVANT, 3), [2 / 3], rtol=1e-6)

    def test_top_k_accuracy_and_recall(self):
        relevant = np.array([[False, True, False, False, True]])  # ranks 3 and 5
        np.testing.assert_allclose(metrics.top_k_accuracy(SCORES, relevant, 2), [0.0])
        np.testing.assert_allclose(metrics.top_k_accuracy(SCORES, relevant, 3), [1.0])
        np.testing.assert_allclose(metrics.recall_at_k(SCORES, relevant, 3), [0.5])
        np.testing.assert_allclose(metrics.recall_at_k(SCORES, relevant, 5), [1.0])

    def test_query_without_relevant_item_is_nan_and_left_out(self):
        relevant = np.vstack([RELEVANT, np.zeros((1, 5), bool)])
        ap = metrics.average_precision(np.vstack([SCORES, SCORES]), relevant)
        assert np.isnan(ap[1])
        summary = metrics.retrieval_summary(np.vstack([SCORES, SCORES]), relevant, ks=(1,))
        assert summary["queries"] == 1 and summary["map"] == pytest.approx(ap[0])

    def test_shape_mismatch_is_refused(self):
        with pytest.raises(ValueError, match="one shape"):
            metrics.per_query_metrics(SCORES, RELEVANT[:, :3])


@pytest.mark.parametrize("seed", range(4))
def test_average_precision_equals_sklearn(seed):
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(seed)
    scores = rng.normal(size=(37, 53))
    relevant = rng.random((37, 53)) < rng.uniform(0.05, 0.5)
    relevant[:, 0] = True  # every query has a relevant item
    expected = [sklearn_metrics.average_precision_score(r, s) for r, s in zip(relevant, scores)]
    # chunk_size 8 does not divide 37: the padded last chunk must not leak in.
    np.testing.assert_allclose(metrics.average_precision(scores, relevant, chunk_size=8), expected, rtol=1e-5)


def test_chunking_does_not_change_results():
    rng = np.random.default_rng(7)
    scores, relevant = rng.normal(size=(50, 20)), rng.random((50, 20)) < 0.2
    relevant[:, 3] = True
    whole = metrics.per_query_metrics(scores, relevant, ks=(1, 5), chunk_size=50)
    chunked = metrics.per_query_metrics(scores, relevant, ks=(1, 5), chunk_size=7)
    for name in whole:
        np.testing.assert_allclose(chunked[name], whole[name], rtol=1e-6)


def test_precision_at_k_matches_a_loop():
    rng = np.random.default_rng(3)
    scores, relevant = rng.normal(size=(10, 30)), rng.random((10, 30)) < 0.3
    relevant[:, 0] = True
    for k in (1, 4, 10):
        top = np.argsort(-scores, axis=1)[:, :k]
        expected = np.take_along_axis(relevant, top, axis=1).mean(axis=1)
        np.testing.assert_allclose(metrics.precision_at_k(scores, relevant, k), expected, rtol=1e-6)


def test_bootstrap_interval_brackets_the_mean_and_narrows_with_more_queries():
    from experiments.retrieval.metrics import bootstrap_interval

    rng = np.random.default_rng(0)
    few, many = rng.random(10) < 0.7, rng.random(1000) < 0.7
    low, high = bootstrap_interval(few)
    assert low <= few.mean() <= high and 0 <= low < high <= 1
    low_many, high_many = bootstrap_interval(many)
    assert high_many - low_many < (high - low) / 3  # about 1/sqrt(100) as wide
    assert bootstrap_interval(np.ones(5)) == (1.0, 1.0)
    assert np.isnan(bootstrap_interval([np.nan, np.nan])[0])
    assert bootstrap_interval([0.0, 1.0, np.nan, 1.0]) == bootstrap_interval([0.0, 1.0, 1.0])

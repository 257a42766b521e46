"""Audio matching: diagonal matching against a loop, planted excerpts, hit suppression."""

import numpy as np

from experiments.retrieval import matching
from experiments.retrieval.tempo import unit_rows


def test_diagonal_matching_equals_a_loop():
    rng = np.random.default_rng(0)
    q, y = unit_rows(rng.random((4, 12))), unit_rows(rng.random((9, 12)))
    expected = [1 - np.mean([q[n] @ y[m + n] for n in range(4)]) if m + 4 <= 9 else np.inf for m in range(9)]
    np.testing.assert_allclose(np.asarray(matching.diagonal_matching(q, y)), expected, rtol=1e-5)


def test_planted_excerpt_is_the_first_hit():
    rng = np.random.default_rng(1)
    database = {f"item{i}": unit_rows(rng.random((40, 12))) for i in range(3)}
    query = database["item2"][13:23]
    curves = {k: matching.matching_curve([query], v, 1.0) for k, v in database.items()}
    hits = matching.ranked_hits(curves, min_gap_s=5)
    assert (hits[0].item_id, hits[0].start_s, hits[0].end_s) == ("item2", 13.0, 22.0)
    assert hits[0].distance < 1e-5
    same_item = [h.start_s for h in hits if h.item_id == "item2"]
    assert all(abs(s - 13.0) >= 5 for s in same_item[1:])  # minimum gap between hits


def test_opening_of_each_version_finds_the_other_version(tiny_corpus, tiny_cens):
    cens = tiny_cens
    result = matching.evaluate_audio_matching(tiny_corpus, cens, query_seconds=6.0)
    assert result.p_at_1 == 1.0 and result.map == 1.0
    assert result.position_accuracy == 1.0
    assert result.example_hits[0].item_id == result.example_query  # the query's own recording first

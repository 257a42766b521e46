"""Theme retrieval on the tiny corpus: planted queries are found at the right place."""

import numpy as np
import pytest

from experiments import timebase
from experiments.retrieval import theme


@pytest.fixture(scope="module")
def enhanced_db(tiny_corpus):
    return theme.chroma_database(tiny_corpus.versions, theme.enhanced_chroma)


@pytest.mark.parametrize("normalize", theme.NORMALIZATIONS)
@pytest.mark.parametrize("transpositions", [12, 1])
def test_excerpt_of_a_version_finds_that_version_at_its_position(tiny_corpus, enhanced_db, normalize,
                                                                  transpositions):
    ids = list(enhanced_db)
    target = tiny_corpus.version(ids[1])
    first, last = timebase.seconds_to_frames([target.theme_start_s, target.theme_end_s], 10.0)
    # Transposed by 5 semitones: only the cyclic shifts can undo it (with one shift tried, the
    # pitch-class profiles must pick the right one).
    query = np.roll(enhanced_db[ids[1]][first:last], 5, axis=1)
    distance, start, end = theme.match_theme([query], [enhanced_db[i] for i in ids], normalize=normalize,
                                             transpositions=transpositions)
    assert np.argmin(distance) == 1 and distance[1] < 1e-3
    assert abs(start[1] - first) <= 1 and abs(end[1] - (last - 1)) <= 1


def brute_force_matching(C: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Subsequence DTW with steps (1,1), (2,1), (1,2), every query frame counted once, cell by cell:
    D(n-1, :) and the start columns."""
    N, M = C.shape
    D, S = np.full((N, M), np.inf), np.zeros((N, M), int)
    D[0], S[0] = C[0], np.arange(M)
    for i in range(1, N):
        for j in range(1, M):
            steps = [((i - 1, j - 1), C[i, j]), ((i - 2, j - 1), C[i - 1, j] + C[i, j]),
                     ((i - 1, j - 2), (C[i, j - 1] + C[i, j]) / 2)]
            options = [(D[a, b] + added, S[a, b]) for (a, b), added in steps if a >= 0 and b >= 0]
            D[i, j], S[i, j] = min(options, key=lambda option: option[0])
    return D[n - 1], S[n - 1]


@pytest.mark.parametrize("shape, n", [((5, 9), 5), ((6, 11), 4), ((1, 5), 1), ((7, 7), 7), ((3, 2), 2)])
def test_matching_function_equals_brute_force(shape, n):
    import jax.numpy as jnp

    C = np.random.default_rng(sum(shape)).random(shape).astype(np.float32)
    delta, starts = map(np.asarray, theme.matching_function(jnp.asarray(C), jnp.int32(n)))
    expected, expected_starts = brute_force_matching(C, n)
    np.testing.assert_allclose(delta, expected, rtol=1e-6)
    reached = np.isfinite(expected)
    np.testing.assert_array_equal(starts[reached], expected_starts[reached])
    batched, _ = theme.matching_function(jnp.asarray(np.stack([C, 2 * C])), jnp.int32(n))  # leading batch axes
    np.testing.assert_allclose(np.asarray(batched), np.stack([expected, 2 * expected]), rtol=1e-6)


def test_recording_normalization_divides_by_the_median_of_the_recordings_own_matching_function():
    """Items of different lengths share a padded call: the median must see each item's own columns only."""
    import jax.numpy as jnp

    import sdtw

    rng = np.random.default_rng(0)
    query = rng.random((20, 12)).astype(np.float32)
    items = [rng.random((m, 12)).astype(np.float32) for m in (50, 130, 75)]
    by_query, _, _ = theme.match_theme([query], items, normalize="query", transpositions=1)
    by_recording, _, _ = theme.match_theme([query], items, normalize="recording", transpositions=1)
    for v, item in enumerate(items):
        shift = theme.transposition_candidates(query, item, 1)[0]
        cost = sdtw.costs.cosine(jnp.asarray(np.roll(query, shift, axis=1)), jnp.asarray(item))
        delta = np.asarray(theme.matching_function(cost, jnp.int32(20))[0]) / 20
        assert by_query[v] == pytest.approx(delta.min(), rel=1e-5)
        assert by_recording[v] == pytest.approx(delta.min() / np.median(delta[np.isfinite(delta)]), rel=1e-5)

"""Theme retrieval on the tiny corpus: planted queries are found at the right place."""

import numpy as np
import pytest

from experiments import timebase
from experiments.retrieval import theme


@pytest.fixture(scope="module")
def enhanced_db(tiny_corpus):
    return theme.chroma_database(tiny_corpus.versions, theme.enhanced_chroma)


def test_excerpt_of_a_version_finds_that_version_at_its_position(tiny_corpus, enhanced_db):
    ids = list(enhanced_db)
    target = tiny_corpus.version(ids[1])
    first, last = timebase.seconds_to_frames([target.theme_start_s, target.theme_end_s], 10.0)
    # Transposed by 5 semitones: only the cyclic shifts can undo it.
    query = np.roll(enhanced_db[ids[1]][first:last], 5, axis=1)
    distance, start, end = theme.match_theme([query], [enhanced_db[i] for i in ids])
    assert np.argmin(distance) == 1 and distance[1] < 1e-3
    assert abs(start[1] - first) <= 1 and abs(end[1] - (last - 1)) <= 1


def test_symbolic_themes_rank_their_own_piece_first(tiny_corpus, enhanced_db):
    result = theme.evaluate_theme_retrieval(tiny_corpus, enhanced_db, 10.0)
    assert result.distances.shape == (len(tiny_corpus.pieces), len(tiny_corpus.versions))
    assert result.top1 == 1.0
    assert result.position_accuracy >= 0.5
    assert (result.queries, result.items) == (2, 4)
    assert np.isnan(result.top10)  # 2 other recordings: a Top-10 could not fail
    assert result.top1_ci == (1.0, 1.0) and result.map_ci[0] <= result.map <= result.map_ci[1]


def test_theme_query_lasts_as_long_as_the_theme(tiny_corpus):
    piece = next(iter(tiny_corpus.pieces.values()))
    seconds = (piece.theme.end_q - piece.theme.start_q) * 60.0 / piece.qpm
    for scale in (0.7, 1.4):
        query = theme.theme_query(piece, 10.0, scale)
        assert query.shape == (timebase.num_frames(seconds * scale, 10.0), 12)
        assert query.max() == 1.0

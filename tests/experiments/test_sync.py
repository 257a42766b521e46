import csv
import dataclasses

import numpy as np
import pytest
import soundfile

from experiments import sync

SR = 22050
FAST = sync.SyncConfig(rate_hz=10.0)  # small cost matrices keep the tests quick


def _valid(path, n, m):
    steps = np.diff(path, axis=0)
    return (tuple(path[0]) == (0, 0) and tuple(path[-1]) == (n - 1, m - 1)
            and np.all(steps >= 0) and np.all(steps <= 1) and np.all(steps.sum(axis=1) >= 1))


@pytest.fixture(scope="module")
def pair(tiny_corpus):
    a, b = tiny_corpus.versions_of("bach-bwv1.6")[:2]
    return a, b, sync.audio_chroma(a.load_audio(), SR, FAST), sync.audio_chroma(b.load_audio(), SR, FAST)


class TestAudioAudio:
    def test_beats_linear_alignment(self, pair):
        a, b, x, y = pair
        result = sync.align(x, y, FAST)
        assert _valid(result.path, len(x), len(y))
        errors = sync.beat_errors(result.path, FAST.rate_hz, a.beats_s, b.beats_s)
        linear = sync.beat_errors(sync.linear_path(len(x), len(y)), FAST.rate_hz, a.beats_s, b.beats_s)
        assert np.mean(errors) < 0.5 * np.mean(linear)
        assert sync.beat_error_stats(errors)["median_ms"] < 100

    def test_multiscale_matches_full(self, pair):
        a, b, x, y = pair
        full = sync.align(x, y, FAST)
        config = dataclasses.replace(FAST, multiscale=True, coarse_rate_hz=2.0, band_radius_s=2.0, tile_frames=30)
        multi = sync.align(x, y, config)
        assert _valid(multi.path, len(x), len(y))
        assert multi.cells < full.cells
        e_full = sync.beat_errors(full.path, FAST.rate_hz, a.beats_s, b.beats_s)
        e_multi = sync.beat_errors(multi.path, FAST.rate_hz, a.beats_s, b.beats_s)
        assert np.mean(e_multi) <= np.mean(e_full) + 0.02

    def test_multiscale_rates_must_divide(self, pair):
        _, _, x, y = pair
        with pytest.raises(ValueError, match="integer multiple"):
            sync.align(x, y, dataclasses.replace(FAST, multiscale=True, coarse_rate_hz=3.0))


def test_score_audio_beats_linear(tiny_corpus):
    version = tiny_corpus.versions_of("bach-bwv66.6")[1]
    piece = tiny_corpus.pieces[version.piece_id]
    result = sync.sync_score_audio(piece, version.load_audio(), SR, FAST)
    score_beats_s = piece.beats_q * 60.0 / piece.qpm
    errors = sync.beat_errors(result.path, FAST.rate_hz, score_beats_s, version.beats_s)
    n, m = result.path[-1] + 1
    linear = sync.beat_errors(sync.linear_path(n, m), FAST.rate_hz, score_beats_s, version.beats_s)
    assert np.mean(errors) < np.mean(linear)


class TestEvaluation:
    def test_warp_times_identity_and_horizontal_runs(self):
        path = np.array([[0, 0], [1, 1], [1, 2], [1, 3], [2, 4]])
        np.testing.assert_allclose(sync.warp_times(np.array([0.0, 0.1, 0.2]), path, 10.0), [0.0, 0.2, 0.4])

    def test_stats(self):
        stats = sync.beat_error_stats(np.array([0.01, 0.04, 0.09, 0.15, 0.5]))
        assert stats["median_ms"] == pytest.approx(90.0)
        assert stats["mean_ms"] == pytest.approx(158.0)
        assert stats["within_50ms_pct"] == 40.0
        assert stats["within_100ms_pct"] == 60.0
        assert stats["within_200ms_pct"] == 80.0

    def test_linear_path(self):
        assert _valid(sync.linear_path(5, 9), 5, 9)


class TestCommandLine:
    def test_audio_pair(self, tiny_corpus, tmp_path):
        a, b = tiny_corpus.versions_of("bach-bwv66.6")[:2]
        soundfile.write(tmp_path / "a.wav", a.load_audio(), SR)
        soundfile.write(tmp_path / "b.flac", b.load_audio(), SR)
        summary = sync.main([str(tmp_path / "a.wav"), str(tmp_path / "b.flac"), "--out", str(tmp_path / "out"),
                             "--rate", "10"])
        rows = list(csv.reader((tmp_path / "out" / "sync.csv").open()))
        assert rows[0] == ["time_a_s", "time_b_s"]
        times = np.asarray(rows[1:], dtype=float)
        assert times[0].tolist() == [0.0, 0.0] and np.all(np.diff(times, axis=0) >= 0)
        assert (tmp_path / "out" / "sync.png").stat().st_size > 1000
        assert summary["kinds"] == ["audio", "audio"]

    def test_score_and_audio(self, tiny_corpus, tmp_path):
        import music21

        version = tiny_corpus.versions_of("bach-bwv66.6")[0]
        music21.corpus.parse("bach/bwv66.6").measures(0, 4).write("musicxml", fp=str(tmp_path / "score.musicxml"))
        soundfile.write(tmp_path / "take.wav", version.load_audio(), SR)
        summary = sync.main([str(tmp_path / "score.musicxml"), str(tmp_path / "take.wav"),
                             "--out", str(tmp_path / "out"), "--rate", "10", "--multiscale"])
        assert summary["kinds"] == ["score", "audio"] and summary["config"]["multiscale"]
        assert (tmp_path / "out" / "sync.png").exists()

    def test_bad_file_named(self, tmp_path):
        (tmp_path / "bad.wav").write_bytes(b"nope")
        with pytest.raises(ValueError, match="bad.wav"):
            sync.main([str(tmp_path / "bad.wav"), str(tmp_path / "bad.wav"), "--out", str(tmp_path / "o")])

import csv
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile

from experiments import sync
from experiments.sync import dtw as sync_paths
from experiments.sync.dtw import edge_path

SR = 22050
FAST = sync.SyncConfig(rate_hz=10.0)  # small cost matrices keep the tests quick


def _valid(path, n, m):
    """From corner to corner, non-decreasing; a hard (integer) path also moves one frame per step."""
    steps = np.diff(path, axis=0)
    ends = tuple(path[0]) == (0, 0) and tuple(path[-1]) == (n - 1, m - 1)
    if not np.issubdtype(path.dtype, np.integer):
        return ends and np.all(steps >= 0)
    return ends and np.all(steps >= 0) and np.all(steps <= 1) and np.all(steps.sum(axis=1) >= 1)


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
        # Soft tiles (the default) give the full-resolution soft path wherever the band holds it, to
        # within a frame: each tile starts at the whole cell nearest the last one's path.
        assert not np.issubdtype(multi.path.dtype, np.integer)
        np.testing.assert_allclose(sync.warp_times(a.beats_s, multi.path, FAST.rate_hz),
                                   sync.warp_times(a.beats_s, full.path, FAST.rate_hz), atol=1.0 / FAST.rate_hz)
        hard = sync.align(x, y, dataclasses.replace(config, soft_gamma=0.0))
        assert np.issubdtype(hard.path.dtype, np.integer) and _valid(hard.path, len(x), len(y))

    def test_multiscale_spread_is_the_full_resolution_spread(self, pair):
        """One spread per row of A; inside the band it is the full-resolution one, except near the
        tile ends, where the path is pinned to a cell."""
        _, _, x, y = pair
        gamma, weight = FAST.soft_gamma, FAST.onset_weight
        _, _, spread = sync_paths.multiscale_path(x, y, factor=5, radius=20, tile_frames=30, soft_gamma=gamma,
                                                  onset_weight=weight)
        _, full = sync_paths.expected_columns(sync_paths.sync_cost(x, y, weight), gamma)
        assert spread.shape == (len(x),)
        assert np.median(np.abs(spread - full)) < 0.25 and full.max() > 1.0
        assert sync_paths.multiscale_path(x, y, factor=5, radius=20, tile_frames=30)[2] is None  # hard tiles

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
    n, m = result.path[-1].astype(int) + 1
    linear = sync.beat_errors(sync.linear_path(n, m), FAST.rate_hz, score_beats_s, version.beats_s)
    assert np.mean(errors) < np.mean(linear)


class TestEvaluation:
    def test_warp_times_identity_and_horizontal_runs(self):
        path = np.array([[0, 0], [1, 1], [1, 2], [1, 3], [2, 4]])
        np.testing.assert_allclose(sync.warp_times(np.array([0.0, 0.1, 0.2]), path, 10.0), [0.0, 0.2, 0.4])

    def test_lead_in_and_tail_runs_map_to_their_inner_ends(self):
        # A score's first note (row 0) against 3 frames of lead-in, its last (row 2) against a tail.
        path = np.array([[0, 0], [0, 1], [0, 2], [0, 3], [1, 4], [2, 5], [2, 6], [2, 7]])
        np.testing.assert_allclose(sync.warp_times(np.array([0.0, 0.1, 0.2]), path, 10.0), [0.3, 0.4, 0.5])

    def test_fractional_path(self):
        path = np.array([[0.0, 0.0], [1.0, 1.5], [2.0, 3.0]])
        np.testing.assert_allclose(sync.warp_times(np.array([0.05, 0.1, 0.15]), path, 10.0), [0.075, 0.15, 0.225])

    def test_stats(self):
        stats = sync.beat_error_stats(np.array([0.01, 0.04, 0.09, 0.15, 0.5]))
        assert stats["median_ms"] == pytest.approx(90.0)
        assert stats["mean_ms"] == pytest.approx(158.0)
        assert stats["within_50ms_pct"] == 40.0
        assert stats["within_100ms_pct"] == 60.0
        assert stats["within_200ms_pct"] == 80.0

    def test_linear_path(self):
        assert _valid(sync.linear_path(5, 9), 5, 9)

    @pytest.mark.parametrize("inner, slope, knee", [((4, 10), 1.0, (0, 6)),    # B's longer silence: a run at row 0
                                                    ((6, 3), 1.0, (3, 0)),     # A's longer silence: a run along column 0
                                                    ((4, 10), 2.0, (0, 2)),
                                                    ((0, 0), 1.0, (0, 0))])
    def test_edge_paths_keep_the_tempo_ratio_through_silence(self, inner, slope, knee):
        lead_in = edge_path(np.asarray(inner), np.zeros(2, np.int64), slope)
        assert _valid(lead_in, inner[0] + 1, inner[1] + 1) and tuple(lead_in[-1]) == inner
        assert tuple(knee) in set(map(tuple, lead_in))
        # The same silence after the music (the music ends at (0, 0) here): the path mirrored.
        n, m = inner[0] + 1, inner[1] + 1
        tail = edge_path(np.zeros(2, np.int64), np.asarray([n - 1, m - 1]), slope)
        assert _valid(tail, n, m) and (n - 1 - knee[0], m - 1 - knee[1]) in set(map(tuple, tail))


class TestCommandLine:
    def test_audio_pair(self, tiny_corpus, tmp_path):
        a, b = tiny_corpus.versions_of("bach-bwv66.6")[:2]
        soundfile.write(tmp_path / "a.wav", a.load_audio(), SR)
        soundfile.write(tmp_path / "b.flac", b.load_audio(), SR)
        assert sync.main([str(tmp_path / "a.wav"), str(tmp_path / "b.flac"), "--out", str(tmp_path / "out"),
                          "--rate", "10"]) == 0
        summary = json.loads((tmp_path / "out" / "summary.json").read_text())
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
        assert sync.main([str(tmp_path / "score.musicxml"), str(tmp_path / "take.wav"),
                          "--out", str(tmp_path / "out"), "--rate", "10", "--multiscale"]) == 0
        summary = json.loads((tmp_path / "out" / "summary.json").read_text())
        assert summary["kinds"] == ["score", "audio"] and summary["config"]["multiscale"]
        assert (tmp_path / "out" / "sync.png").exists()

    @pytest.fixture
    def good_wav(self, tiny_corpus, tmp_path):
        version = tiny_corpus.versions[0]
        soundfile.write(tmp_path / "good.wav", version.load_audio(), SR)
        return tmp_path / "good.wav"

    @pytest.mark.parametrize("case, expected", [
        ("missing", "audio file not found"),
        ("zero bytes", "audio file is empty (0 bytes)"),
        ("text named .wav", "cannot decode audio file"),
        ("NaN samples", "not finite"),
        ("0.01 s", " s long; synchronization needs at least 1 s"),
        ("1 sample", " s long; synchronization needs at least 1 s"),
    ])
    def test_bad_input_is_one_line_and_exit_2(self, case, expected, good_wav, tmp_path, capsys):
        bad = tmp_path / "bad.wav"
        if case == "zero bytes":
            bad.write_bytes(b"")
        elif case == "text named .wav":
            bad.write_text("this is not audio")
        elif case == "NaN samples":
            soundfile.write(bad, np.full(SR, np.nan, np.float32), SR, subtype="FLOAT")
        elif case == "0.01 s":
            soundfile.write(bad, 0.1 * np.ones(SR // 100, np.float32), SR)
        elif case == "1 sample":
            soundfile.write(bad, np.array([0.5], np.float32), SR)
        assert sync.main([str(good_wav), str(bad), "--out", str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and expected in err and "bad.wav" in err and err.count("\n") == 1

    @pytest.mark.parametrize("rate", ["-5", "0", "nan"])
    def test_bad_rate_refused_before_any_work(self, rate, good_wav, tmp_path, capsys):
        with pytest.raises(SystemExit) as exit_info:
            sync.main([str(good_wav), str(good_wav), "--out", str(tmp_path / "out"), "--rate", rate])
        assert exit_info.value.code == 2 and "--rate: must be > 0" in capsys.readouterr().err
        assert not (tmp_path / "out").exists()

    def test_unwritable_out_refused_before_any_work(self, good_wav, tmp_path, capsys, monkeypatch):
        (tmp_path / "a_file").write_text("")
        monkeypatch.setattr(sync.cli, "align_prepared", lambda *a, **k: pytest.fail("aligned before checking --out"))
        assert sync.main([str(good_wav), str(good_wav), "--out", str(tmp_path / "a_file" / "out")]) == 2
        assert "cannot write to --out" in capsys.readouterr().err

    def test_comma_in_a_file_name_is_quoted_in_the_csv(self, good_wav, tmp_path):
        odd = tmp_path / "take 2, live.wav"
        odd.write_bytes(good_wav.read_bytes())
        assert sync.main([str(good_wav), str(odd), "--out", str(tmp_path / "out"), "--rate", "10"]) == 0
        rows = list(csv.reader((tmp_path / "out" / "sync.csv").open()))
        assert rows[0] == ["time_good_s", "time_take 2, live_s"] and len(rows[1]) == 2


class TestPairs:
    @pytest.fixture
    def folder(self, tiny_corpus, tmp_path):
        """Three recordings and a pairs CSV with two good pairs and one of a missing file."""
        versions = tiny_corpus.versions_of("bach-bwv66.6")[:2] + tiny_corpus.versions_of("bach-bwv1.6")[:1]
        for name, version in zip("xyz", versions):
            soundfile.write(tmp_path / f"{name}.wav", version.load_audio(), SR)
        (tmp_path / "pairs.csv").write_text("a,b\nx.wav,y.wav\nx.wav,missing.wav\ny.wav,z.wav\n")
        return tmp_path

    def test_every_pair_in_one_process(self, folder, capsys):
        out = folder / "out"
        assert sync.main(["--pairs", str(folder / "pairs.csv"), "--out", str(out), "--rate", "10"]) == 1
        rows = list(csv.DictReader((out / "summary.csv").open()))
        assert [r["status"] for r in rows] == ["ok", rows[1]["status"], "ok"]
        assert rows[1]["status"].startswith("error: audio file not found")
        for row in (rows[0], rows[2]):  # each pair has the files of the single-pair form
            assert {"sync.csv", "sync.png", "summary.json"} <= {p.name for p in Path(row["folder"]).iterdir()}
        err = capsys.readouterr().err
        assert "pair 2" in err and "missing.wav" in err
        single = folder / "single"
        assert sync.main([str(folder / "x.wav"), str(folder / "y.wav"), "--out", str(single), "--rate", "10"]) == 0
        assert (single / "sync.csv").read_text() == (out / "0001-x-y" / "sync.csv").read_text()

    def test_a_rerun_skips_the_pairs_already_done(self, folder, monkeypatch):
        args = ["--pairs", str(folder / "pairs.csv"), "--out", str(folder / "out"), "--rate", "10"]
        sync.main(args)
        monkeypatch.setattr(sync.cli, "align_prepared", lambda *a, **k: pytest.fail("aligned a pair done before"))
        assert sync.main(args) == 1  # the missing file still fails, without stopping the others
        rows = list(csv.DictReader((folder / "out" / "summary.csv").open()))
        assert [r["status"] for r in rows][::2] == ["done before", "done before"]
        with pytest.raises(pytest.fail.Exception):  # other options: computed again
            sync.main([*args[:-1], "20"])

    @pytest.mark.parametrize("content, expected", [("x,y\na.wav,b.wav\n", "needs the columns a,b"),
                                                   ("a,b\n", "lists no pair")])
    def test_bad_pairs_file_is_one_line(self, folder, content, expected, capsys):
        (folder / "bad.csv").write_text(content)
        assert sync.main(["--pairs", str(folder / "bad.csv"), "--out", str(folder / "o")]) == 2
        assert expected in capsys.readouterr().err

    def test_two_files_or_pairs_not_both(self, folder):
        with pytest.raises(SystemExit):
            sync.main(["--pairs", str(folder / "pairs.csv"), str(folder / "x.wav"), "--out", str(folder / "o")])
        with pytest.raises(SystemExit):
            sync.main([str(folder / "x.wav"), "--out", str(folder / "o")])


def _all_paths(n, m):
    """Every monotone path from (0, 0) to (n-1, m-1) with unit steps, by enumeration."""
    if (n, m) == (1, 1):
        return [[(0, 0)]]
    paths = []
    for di, dj in ((1, 0), (0, 1), (1, 1)):
        if n - di >= 1 and m - dj >= 1:
            paths += [p + [(n - 1, m - 1)] for p in _all_paths(n - di, m - dj)]
    return paths


def test_expected_path_is_the_mean_column_under_the_gibbs_distribution():
    from experiments.sync.dtw import expected_columns, expected_path

    rng = np.random.default_rng(0)
    cost, gamma = rng.uniform(size=(4, 5)), 0.3
    paths = _all_paths(4, 5)
    weights = np.exp(-np.array([sum(cost[i, j] for i, j in p) for p in paths]) / gamma)
    weights /= weights.sum()
    occupancy = np.zeros_like(cost)
    for p, w in zip(paths, weights):
        for i, j in p:
            occupancy[i, j] += w
    brute = occupancy @ np.arange(5) / occupancy.sum(axis=1)
    path = expected_path(cost, gamma)
    np.testing.assert_allclose(path[1:-1, 1], np.maximum.accumulate(brute), rtol=1e-4)
    np.testing.assert_array_equal(path[[0, -1]], [[0, 0], [3, 4]])
    # The spread: the standard deviation of the column around that mean, under the same weights.
    spread = np.sqrt(occupancy @ np.arange(5) ** 2 / occupancy.sum(axis=1) - brute ** 2)
    np.testing.assert_allclose(expected_columns(cost, gamma)[1], spread, rtol=1e-3, atol=1e-4)


def test_the_spread_is_small_where_one_match_stands_out_and_large_where_none_does():
    from experiments.sync.dtw import expected_columns

    clear = 1.0 - np.eye(60, dtype=np.float32)
    flat = np.ones((20, 60), dtype=np.float32)  # every shortest path (60 cells) costs the same
    assert expected_columns(clear, 0.1)[1][1:-1].max() < 0.1
    assert expected_columns(flat, 0.1)[1][8:12].min() > 5.0


def test_an_onset_where_the_alignment_is_unsure_does_not_anchor_it():
    """Rows 0-39 match columns 0-39 one to one and rows 60-99 columns 120-159; rows 40-59 hold one
    note that columns 40-119 hold too, and row 50 adds a second one that column 55 shows as well.
    Soft-DTW pulls row 50 towards column 55, unsure (two matches, far apart, both partial): as an
    anchor it pins the path there; above ``anchor_max_spread_s`` it is crossed straight."""
    x = np.zeros((100, 12), np.float32)
    y = np.zeros((160, 12), np.float32)
    x[:40] = y[:40] = np.eye(12, dtype=np.float32)[np.arange(40) % 12] + 0.1
    x[60:] = y[120:] = np.eye(12, dtype=np.float32)[np.arange(40) % 12] + 0.1
    x[40:60, 0] = y[40:120, 0] = 1.0
    x[50, 1] = y[55, 1] = 1.0
    onsets = np.zeros(100)
    onsets[[0, 39, 50, 60, 99]] = 1.0
    config = sync.SyncConfig(rate_hz=10.0, onset_weight=0.0, soft_gamma=0.05, anchor_threshold=0.5,
                             anchor_window_s=0.5)
    columns, spread = sync_paths.expected_columns(sync_paths.sync_cost(x, y), config.soft_gamma)
    assert spread[50] > 5 and abs(columns[50] - 55) < 5          # pulled to the second match, unsure
    assert spread[[39, 60]].max() < 2                              # sure where the notes change
    mapped = {}
    for limit in (0.0, 0.3):
        path = sync.align(x, y, dataclasses.replace(config, anchor_max_spread_s=limit), onsets_x=onsets).path
        mapped[limit] = dict(zip(*sync_paths.path_columns(path)))
    assert mapped[0.0][50] == pytest.approx(columns[50], abs=0.5)   # pinned where soft-DTW put it
    assert mapped[0.3][50] == pytest.approx(np.interp(50, [39, 60], [mapped[0.3][39], mapped[0.3][60]]), abs=0.5)
    assert abs(mapped[0.3][39] - 39) < 1 and abs(mapped[0.3][60] - 120) < 1


def test_soft_path_lands_between_frames_and_is_no_worse(pair):
    a, b, x, y = pair
    errors = {}
    for gamma in (0.0, 0.2):
        result = sync.align(x, y, dataclasses.replace(FAST, soft_gamma=gamma))
        assert _valid(result.path, len(x), len(y))
        errors[gamma] = sync.beat_errors(result.path, FAST.rate_hz, a.beats_s, b.beats_s)
    assert not np.allclose(result.path, np.round(result.path))
    assert np.mean(errors[0.2]) <= np.mean(errors[0.0]) + 0.005


class TestOnsetAnchors:
    def test_strong_onsets_hold_their_own_against_the_largest_nearby(self):
        from experiments.sync.dtw import strong_onsets

        onsets = np.array([0.0, 1.0, 0.0, 0.5, 0.0, 0.0, 0.0, 0.0, 0.9, 0.2, 0.0])
        # Frame 3 lies within 2 frames of frame 1's 1.0; frame 9 beside frame 8's 0.9.
        np.testing.assert_array_equal(strong_onsets(onsets, window=4, threshold=0.7), [1, 8])
        np.testing.assert_array_equal(strong_onsets(onsets, window=4, threshold=0.4), [1, 3, 8])
        assert strong_onsets(np.zeros(6), window=4, threshold=0.7).size == 0

    def test_path_kept_at_anchors_and_straight_between(self):
        from experiments.sync.dtw import anchor_at_onsets

        # A detour between frames 0 and 4 of A, a horizontal run on frame 5, the tail run on frame 6.
        path = np.array([[0, 0], [1, 3], [2, 3], [3, 3], [4, 4], [5, 5], [5, 6], [6, 8], [6, 9]])
        anchored = anchor_at_onsets(path, np.array([4]), 7)
        np.testing.assert_allclose(anchored, [[0, 0], [0, 0], [1, 1], [2, 2], [3, 3], [4, 4], [5, 6], [6, 8], [6, 9]])
        np.testing.assert_allclose(anchor_at_onsets(path, np.arange(7), 7)[1:-1, 1], [0, 3, 3, 3, 4, 5.5, 8])
        with pytest.raises(ValueError, match="covers 7 frames of A, expected 9"):
            anchor_at_onsets(path, np.array([4]), 9)

    def test_align_runs_straight_between_strong_onsets(self, pair):
        _, _, x, y = pair
        onsets = np.zeros(len(x))
        onsets[[10, 25, 40]] = 1.0
        config = dataclasses.replace(FAST, anchor_threshold=0.7, anchor_window_s=1.0, anchor_max_spread_s=0.0)
        free = sync.align(x, y, config)
        anchored = sync.align(x, y, config, onsets_x=onsets)
        assert _valid(anchored.path, len(x), len(y)) and len(anchored.path) == len(x) + 2
        rows = anchored.path[1:-1]  # one per frame of A
        onset_times = np.array([10, 25, 40]) / FAST.rate_hz
        np.testing.assert_allclose(rows[[10, 25, 40], 1] / FAST.rate_hz,
                                   sync.warp_times(onset_times, free.path, FAST.rate_hz), atol=1e-6)
        assert np.allclose(np.diff(rows[10:26, 1], n=2), 0.0, atol=1e-6)
        assert not np.allclose(np.diff(free.path[11:27, 1], n=2), 0.0, atol=1e-3)
        with pytest.raises(ValueError, match="onsets_x has 3 frames"):
            sync.align(x, y, config, onsets_x=np.ones(3))

import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile

from experiments.data import loaders

SR = 22050


def _tone(seconds=0.5, sr=SR):
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


@pytest.fixture
def folder(tmp_path):
    soundfile.write(tmp_path / "good.wav", _tone(), SR)
    soundfile.write(tmp_path / "good44.flac", _tone(sr=44100), 44100)
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF\x00\x00garbage that is not audio")
    (tmp_path / "empty.wav").write_bytes(b"")
    soundfile.write(tmp_path / "silent.wav", np.zeros(SR, dtype=np.float32), SR)
    soundfile.write(tmp_path / "zero_length.wav", np.zeros(0, dtype=np.float32), SR)
    (tmp_path / "notes.txt").write_text("not audio, ignored")
    (tmp_path / "annotations.csv").write_text("file,start,end,label\ngood.wav,0.1,0.3,theme\ngood.wav,0.0,0.1,intro\n")
    return tmp_path


class TestLoadAudio:
    def test_good_file_resampled(self, folder):
        audio = loaders.load_audio(folder / "good44.flac", sample_rate=SR)
        assert audio.dtype == np.float32 and abs(len(audio) - SR // 2) <= 1

    @pytest.mark.parametrize("name, reason", [("corrupt.wav", "cannot decode"), ("empty.wav", "empty"),
                                              ("silent.wav", "silent"), ("zero_length.wav", "no samples|empty"),
                                              ("missing.wav", "not found")])
    def test_bad_file_named(self, folder, name, reason):
        with pytest.raises(loaders.AudioLoadError, match=reason) as info:
            loaders.load_audio(folder / name)
        assert name in str(info.value)


class TestFolder:
    def test_skips_and_reports(self, folder):
        with pytest.warns(UserWarning) as record:
            items = loaders.load_audio_folder(folder, annotations_csv=folder / "annotations.csv")
        assert [item.path.name for item in items] == ["good.wav", "good44.flac"]
        reported = " ".join(str(w.message) for w in record)
        for name in ("corrupt.wav", "empty.wav", "silent.wav", "zero_length.wav"):
            assert name in reported
        annotations = items[0].annotations
        assert [a.label for a in annotations] == ["intro", "theme"]
        assert annotations[1].start_s == 0.1 and annotations[1].end_s == 0.3

    def test_raise_mode(self, folder):
        with pytest.raises(loaders.AudioLoadError, match="corrupt.wav"):
            loaders.load_audio_folder(folder, on_error="raise")

    def test_missing_and_empty_folder(self, tmp_path):
        with pytest.raises(FileNotFoundError, match="not found"):
            loaders.load_audio_folder(tmp_path / "nowhere")
        (tmp_path / "empty").mkdir()
        with pytest.raises(FileNotFoundError, match="no audio files"):
            loaders.load_audio_folder(tmp_path / "empty")

    def test_only_bad_files(self, folder, tmp_path):
        bad = tmp_path / "bad"
        bad.mkdir()
        (bad / "x.wav").write_bytes(b"junk")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with pytest.raises(ValueError, match="no readable audio"):
                loaders.load_audio_folder(bad)

    def test_bad_annotation_csv(self, folder):
        (folder / "bad.csv").write_text("file,begin\ngood.wav,1\n")
        with pytest.raises(ValueError, match="bad.csv.*missing column"):
            loaders.load_annotations(folder / "bad.csv")
        (folder / "bad2.csv").write_text("file,start,end\ngood.wav,x,1\n")
        with pytest.raises(ValueError, match="bad2.csv, line 2"):
            loaders.load_annotations(folder / "bad2.csv")


@pytest.fixture(scope="module")
def score_folder(tmp_path_factory):
    import music21

    folder = tmp_path_factory.mktemp("scores")
    score = music21.corpus.parse("bach/bwv66.6").measures(0, 3)
    score.write("musicxml", fp=str(folder / "chorale.musicxml"))
    score.write("midi", fp=str(folder / "chorale.mid"))
    (folder / "broken.mid").write_bytes(b"MThd this is not midi")
    (folder / "broken.musicxml").write_text("<score-partwise><part")
    return folder


class TestScores:
    @pytest.mark.parametrize("name", ["chorale.musicxml", "chorale.mid"])
    def test_load(self, score_folder, name):
        piece = loaders.load_score(score_folder / name)
        assert piece.piece_id == "chorale" and len(piece.part_names) == 4
        assert len(piece.notes) > 20 and len(piece.beats_q) > 0
        pitches = {n.pitch for n in piece.notes}
        assert 73 in pitches  # the soprano's opening C#5

    @pytest.mark.parametrize("name", ["broken.mid", "broken.musicxml", "missing.mid"])
    def test_bad_score_named(self, score_folder, name):
        with pytest.raises(loaders.ScoreLoadError, match=name):
            loaders.load_score(score_folder / name)

    def test_folder_skips_bad(self, score_folder):
        with pytest.warns(UserWarning, match="broken"):
            pieces = loaders.load_score_folder(score_folder)
        assert sorted(p.source.rsplit("/", 1)[-1] for p in pieces) == ["chorale.mid", "chorale.musicxml"]


def test_scores_are_parsed_without_music21_pickles(score_folder, tmp_path):
    """music21 caches parsed scores as pickles at a predictable path in the system temp folder and
    loads them on the next parse; a pickle planted there runs its code. We never read one."""
    import pickle
    import zlib

    import music21
    from music21.converter import PickleFilter

    marker = tmp_path / "planted-code-ran"

    class Planted:
        def __reduce__(self):
            return open, (str(marker), "w")

    source = score_folder / "chorale.musicxml"
    _, _, cache_path = PickleFilter(str(source), False, None).status()
    cache_path = Path(cache_path)
    cache_path.parent.mkdir(parents=True, exist_ok=True)
    cache_path.write_bytes(zlib.compress(pickle.dumps(Planted())))
    try:
        piece = loaders.load_score(source)
        assert not marker.exists()
        assert 73 in {n.pitch for n in piece.notes}
        with pytest.raises(Exception):
            music21.converter.parse(str(source))  # music21's default: loads the planted pickle
        assert marker.exists()  # ... so the plant was where music21 looks
    finally:
        cache_path.unlink(missing_ok=True)


def performance_midi(path: Path, onsets_s: np.ndarray, qpm: float, tempo_changes=()) -> Path:
    """A MIDI file of one note per onset (0.3 s long, pitches cycling over an octave), written by music21."""
    import music21

    stream = music21.stream.Stream()
    stream.insert(0, music21.tempo.MetronomeMark(number=qpm))
    for offset_q, number in tempo_changes:
        stream.insert(offset_q, music21.tempo.MetronomeMark(number=number))
    for i, onset in enumerate(onsets_s):
        note = music21.note.Note(60 + i % 12)
        note.quarterLength = 0.3 * qpm / 60
        stream.insert(float(onset * qpm / 60), note)
    stream.write("midi", fp=str(path))
    return path


def test_a_performance_midi_keeps_its_note_times_to_the_millisecond(tmp_path):
    from experiments.sync import score_events

    onsets = np.cumsum(np.random.default_rng(0).uniform(0.05, 0.4, 40))  # off any grid, across bar lines
    path = performance_midi(tmp_path / "performance.mid", onsets, qpm=100)
    times = np.array([event.onset_s for event in score_events(loaders.load_score(path))])
    assert len(times) == len(onsets)
    np.testing.assert_allclose(times, onsets, atol=1e-3)
    quantized = loaders.load_score(path, quantized_midi=True)  # read as notation: moved to the grid
    moved = np.array([event.onset_s for event in score_events(quantized)])
    assert len(moved) != len(onsets) or np.abs(moved - onsets).max() > 0.01


def test_midi_tempo_changes_are_followed(tmp_path):
    from experiments.sync import score_events

    quarters = np.arange(0.0, 16.0, 2.0)
    path = performance_midi(tmp_path / "tempo.mid", quarters * 0.6, qpm=100, tempo_changes=[(8.0, 50)])
    expected = np.where(quarters < 8, quarters * 0.6, 4.8 + (quarters - 8) * 1.2)  # 100 then 50 per minute
    piece = loaders.load_score(path)
    np.testing.assert_allclose([event.onset_s for event in score_events(piece)], expected, atol=1e-3)
    assert piece.qpm == pytest.approx(100.0)


def test_a_score_midi_reads_as_its_notation(tmp_path):
    import music21

    music21.corpus.parse("bach/bwv66.6").write("midi", fp=str(tmp_path / "chorale.mid"))
    exact = loaders.load_score(tmp_path / "chorale.mid")
    notation = loaders.load_score(tmp_path / "chorale.mid", quantized_midi=True)
    assert [(n.onset_q, n.offset_q, n.pitch) for n in exact.notes] == \
        [(n.onset_q, n.offset_q, n.pitch) for n in notation.notes]
    np.testing.assert_allclose(exact.measures_q, notation.measures_q)
    assert exact.qpm == notation.qpm and len(exact.part_names) == 4


def test_a_damaged_midi_is_one_clear_error(tmp_path):
    (tmp_path / "bad.mid").write_bytes(b"MThd\x00\x00\x00\x06garbage")
    with pytest.raises(loaders.ScoreLoadError, match="cannot parse score .*bad.mid"):
        loaders.load_score(tmp_path / "bad.mid")

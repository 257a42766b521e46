import librosa
import numpy as np
import pytest

from experiments import features, timebase
from experiments.data.types import NoteEvent

SR = 22050
RATE = SR / 512  # the analysis rate: resampling is the identity there


@pytest.fixture(scope="module")
def audio(tiny_corpus):
    return tiny_corpus.versions[0].load_audio()


class TestAgainstLibrosa:
    def test_chroma_cqt(self, audio):
        ours = features.chroma_cqt(audio, SR, rate_hz=RATE)
        theirs = librosa.feature.chroma_cqt(y=audio, sr=SR, hop_length=512, bins_per_octave=36).T
        assert ours.shape == theirs.shape
        np.testing.assert_allclose(ours, theirs, atol=1e-5)

    def test_chroma_stft(self, audio):
        ours = features.chroma_stft(audio, SR, rate_hz=RATE)
        theirs = librosa.feature.chroma_stft(y=audio, sr=SR, n_fft=4096, hop_length=512).T
        np.testing.assert_allclose(ours, theirs, atol=1e-5)

    def test_cens_window_and_rate(self, audio):
        ours = features.chroma_cens(audio, SR, rate_hz=1.0)
        window = features.cens_window(41, 10.0, RATE)
        assert window == 177  # 4.1 s at 43 Hz
        theirs = librosa.feature.chroma_cens(y=audio, sr=SR, hop_length=512, win_len_smooth=window).T
        expected = timebase.resample_frames(theirs, RATE, 1.0, len(ours))
        np.testing.assert_allclose(ours, expected, atol=1e-5)
        assert len(ours) == timebase.num_frames(len(audio) / SR, 1.0)

    def test_log_frequency(self, audio):
        ours = features.log_frequency_spectrogram(audio, SR, rate_hz=RATE)
        theirs = np.log1p(np.abs(librosa.cqt(audio, sr=SR, hop_length=512, fmin=librosa.note_to_hz("C2"),
                                             n_bins=120, bins_per_octave=24))).T
        np.testing.assert_allclose(ours, theirs, atol=1e-4)

    def test_hcqt_channels(self, audio):
        clip = audio[: 6 * SR]
        ours = features.hcqt(clip, SR, rate_hz=RATE)
        assert ours.shape[1:] == (6, 216)
        second = np.log1p(10 * np.abs(librosa.cqt(clip, sr=SR, hop_length=512, fmin=2 * librosa.note_to_hz("C1"),
                                                  n_bins=216, bins_per_octave=36))).T
        np.testing.assert_allclose(ours[:, 2], second, atol=1e-4)


class TestRate:
    @pytest.mark.parametrize("kind", ["chroma_cqt", "chroma_stft", "logfreq"])
    def test_frames_match_rate(self, audio, kind):
        out = features.audio_features(audio, SR, {"kind": kind, "rate_hz": 10.0})
        assert out.dtype == np.float32
        assert len(out) == timebase.num_frames(len(audio) / SR, 10.0)

    def test_unknown_kind(self, audio):
        with pytest.raises(ValueError, match="unknown feature"):
            features.audio_features(audio, SR, {"kind": "mfcc"})


class TestSymbolic:
    notes = [NoteEvent(0.0, 0.5, 60, 0), NoteEvent(0.0, 1.0, 64, 1), NoteEvent(0.5, 1.0, 74, 0)]

    def test_pianoroll(self):
        roll = features.notes_to_pianoroll(self.notes, 10.0)
        assert roll.shape == (11, 128)
        assert roll[0:5, 60].all() and not roll[5:, 60].any()
        assert roll[0:10, 64].all() and roll[5:10, 74].all()

    def test_chroma(self):
        chroma = features.notes_to_chroma(self.notes, 10.0, 12)
        assert chroma.shape == (12, 12)
        assert set(np.nonzero(chroma[0])[0]) == {0, 4}
        assert set(np.nonzero(chroma[6])[0]) == {2, 4}
        assert not chroma[11].any()

    def test_chroma_matches_audio_of_same_notes(self, tiny_corpus):
        """Score chroma and audio chroma of a version agree frame by frame."""
        version = tiny_corpus.versions[0]
        audio_chroma = features.chroma_cqt(version.load_audio(), SR, rate_hz=10.0)
        score_chroma = features.notes_to_chroma(version.notes, 10.0, len(audio_chroma))
        sounding = score_chroma.any(axis=1)
        cos = np.sum(audio_chroma * score_chroma, axis=1) / (
            np.linalg.norm(audio_chroma, axis=1) * np.linalg.norm(score_chroma, axis=1) + 1e-9)
        shifted = np.roll(score_chroma, 7, axis=1)  # a wrong key as a control
        cos_wrong = np.sum(audio_chroma * shifted, axis=1) / (
            np.linalg.norm(audio_chroma, axis=1) * np.linalg.norm(shifted, axis=1) + 1e-9)
        assert np.mean(cos[sounding]) > np.mean(cos_wrong[sounding]) + 0.2

    def test_label_sequence(self):
        labels = features.chroma_label_sequence(self.notes)
        np.testing.assert_array_equal(labels, [64 % 12 + 1, 74 % 12 + 1])  # highest note of the chord
        assert features.chroma_label_sequence(self.notes, blank_id=12).tolist() == [4, 2]

    def test_framewise_labels(self):
        labels = features.framewise_chroma_labels(self.notes, 10.0, 12)
        assert labels[0] == 5 and labels[6] == 3 and labels[11] == 0

    def test_padding(self):
        labels, paddings = features.pad_label_sequences([np.array([1, 2, 3]), np.array([4])])
        np.testing.assert_array_equal(labels, [[1, 2, 3], [4, 0, 0]])
        np.testing.assert_array_equal(paddings, [[0, 0, 0], [0, 1, 1]])
        with pytest.raises(ValueError, match="max_length"):
            features.pad_label_sequences([np.array([1, 2, 3])], max_length=2)


def test_corpus_features_cached(tiny_corpus):
    first = features.corpus_features(tiny_corpus, {"kind": "chroma_cqt", "rate_hz": 10.0}, progress=False)
    assert set(first) == {v.version_id for v in tiny_corpus}
    version = tiny_corpus.versions[0]
    np.testing.assert_array_equal(first[version.version_id],
                                  features.chroma_cqt(version.load_audio(), SR, rate_hz=10.0))
    folders = list((tiny_corpus.root / "features").glob("chroma_cqt-*"))  # other tests add other kinds
    assert len(folders) == 1 and len(list(folders[0].glob("*.npy"))) == len(tiny_corpus)
    again = features.corpus_features(tiny_corpus, {"kind": "chroma_cqt", "rate_hz": 10.0}, progress=False)
    np.testing.assert_array_equal(again[version.version_id], first[version.version_id])

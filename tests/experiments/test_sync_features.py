"""Onset features (DLNCO), silence trimming and the score's decaying chroma, against exact note times."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from experiments import sync
from experiments.data import synth
from experiments.data.types import NoteEvent
from experiments.sync import features as sync_features

SR = 22050
RATE = 50.0
# A C-major arpeggio on the piano, then a held chord: onsets we know to the sample.
NOTES = [NoteEvent(0.5, 0.9, 60, 0), NoteEvent(0.9, 1.3, 64, 0), NoteEvent(1.3, 1.7, 67, 0),
         NoteEvent(1.7, 3.0, 69, 0), NoteEvent(1.7, 3.0, 62, 0)]


@pytest.fixture(scope="module")
def arpeggio():
    return synth.render_notes(NOTES, ["piano"], SR, duration_s=4.0).astype(np.float32)


def test_audio_onsets_fall_on_the_note_starts(arpeggio):
    onsets = sync_features.audio_onsets(arpeggio, SR, RATE, int(4.0 * RATE) + 1)
    for note in NOTES:
        frame = int(round(note.onset_s * RATE))
        window = onsets[frame - 2:frame + 3, note.pitch % 12]
        assert window.max() > 0.15, f"no onset of pitch class {note.pitch % 12} at {note.onset_s} s"
    assert onsets[:int(0.5 * RATE) - 5].max() < 0.01  # nothing before the first note ...
    assert onsets[:int(0.5 * RATE) - 2].max() < 0.1  # ... but a trace of the long low-pitch CQT windows
    between = onsets[int(1.12 * RATE):int(1.3 * RATE) - 2]  # after the second onset has decayed, before the third
    assert between.max() < 0.1


def test_a_slow_attack_is_found_at_its_start():
    """A bowed or sung note swells over 80 ms; its onset is where it starts, not where it swells fastest."""
    t = np.arange(int(2.0 * SR)) / SR
    start, attack = 0.5, 0.08
    envelope = np.clip((t - start) / attack, 0.0, 1.0) ** 2
    audio = (envelope * np.sin(2 * np.pi * 440.0 * t) + 0.3 * np.sin(2 * np.pi * 261.63 * t)).astype(np.float32)
    times, pitches, _ = sync_features.pitch_onsets(audio, SR)
    found = times[(pitches == 69) & (times > 0.2)]
    assert len(found) and abs(found[0] - start) < 0.02, found


def test_a_note_starting_under_another_sound_is_not_found_late():
    """A swell that starts under a held tone of its semitone (here 14 dB down) shows only once it
    climbs out of it; the shortfall of its rise moves the onset back to where the note starts."""
    t = np.arange(int(2.0 * SR)) / SR
    start = 1.0
    swell = np.clip((t - start) / 0.08, 0.0, 1.0) ** 2 * np.sin(2 * np.pi * 440.0 * t)
    held = 0.2 * np.sin(2 * np.pi * 440.0 * t) * (t > 0.3)

    def lag(audio, **options):
        times, pitches, _ = sync_features.pitch_onsets(audio.astype(np.float32), SR, **options)
        found = times[(pitches == 69) & (times > 0.8)]
        assert len(found) == 1, found
        return found[0] - start

    assert abs(lag(swell + held)) < 0.02
    assert lag(swell + held, masked_lag_s_per_db=0.0) > 0.025  # uncorrected: 33 ms late
    assert abs(lag(swell)) < 0.02  # out of silence it rises the full range and stays where it was


def test_rise_depth():
    level = np.zeros((1, 100))
    level[0, 40:60] = 10.0
    level[0, 60:] = 35.0
    np.testing.assert_allclose(sync_features.rise_depth(level, np.array([0, 0]), np.array([60, 64]), horizon=10),
                               [25.0, 0.0])  # from 10 dB, three frames before the start; then from 35


def test_bass_and_treble_onsets_agree_on_when_a_note_starts():
    """A semitone's window is 265 ms long at C2 and 33 ms at C5, and sees a note before it starts;
    moved by ``window_lead`` of their windows, low and high onsets fall on the note start alike."""
    notes = [NoteEvent(0.5 + i, 1.2 + i, pitch, 0) for i, pitch in enumerate([36, 43, 48, 55, 60, 72])]
    audio = synth.render_notes(notes, ["piano"], SR, duration_s=7.0).astype(np.float32)

    def first_onset_lag(window_lead):
        times, pitches, _ = sync_features.pitch_onsets(audio, SR, window_lead=window_lead)
        lags = []
        for note in notes:
            near = times[(pitches == note.pitch) & (np.abs(times - note.onset_s) < 0.2)]
            assert len(near), f"no onset of MIDI {note.pitch} near {note.onset_s} s"
            lags.append(near.min() - note.onset_s)
        return np.asarray(lags)

    np.testing.assert_array_less(np.abs(first_onset_lag(sync_features.WINDOW_LEAD)), 0.04)
    assert first_onset_lag(0.0)[0] < -0.08  # uncorrected, the C2 onset came ~100 ms early


def test_a_held_note_with_tremolo_is_one_onset():
    """Vibrato and the loops of sampled sustains move a held note's level by a few dB, five times a
    second; only the note's start raises it for good."""
    t = np.arange(int(3.0 * SR)) / SR
    start = 0.5
    tremolo_db = 6.0 * np.sin(2 * np.pi * 5.5 * t)
    envelope = (t >= start) * 10.0 ** (tremolo_db / 20.0)
    audio = (envelope * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)
    times, pitches, _ = sync_features.pitch_onsets(audio, SR)
    found = times[pitches == 69]
    assert len(found) == 1 and abs(found[0] - start) < 0.02, found
    _, pitches, _ = sync_features.pitch_onsets(audio, SR, min_sustained_db=0.0)
    assert np.sum(pitches == 69) > 5  # every swell of the tremolo, without the test


def test_sustained_rise_of_a_step():
    level = np.zeros((1, 100))
    level[0, 50:] = 10.0
    rise = sync_features.sustained_rise(level, width=5)
    np.testing.assert_allclose(rise[0, [49, 50]], 10.0)  # five frames of 0 before, five of 10 after
    np.testing.assert_allclose(rise[0, 47], 6.0)  # three of the five frames after are 10
    np.testing.assert_allclose(rise[0, [44, 55]], 0.0)
    np.testing.assert_allclose(rise[0, [0, 99]], 0.0)  # the edges repeat the end frames


def test_rise_start_of_a_ramp():
    level = np.zeros((2, 100))
    level[0, 50:71] = np.linspace(0.0, 30.0, 21)  # 1.5 dB a frame from frame 50, fastest nowhere
    level[0, 71:] = 30.0
    level[1, 30:] = 20.0  # a step too far back: the level never comes down to its "before"
    starts = sync_features.rise_start(level, np.array([0, 1]), np.array([60, 50]), width=17, margin_db=3.0)
    np.testing.assert_array_equal(starts, [53, 50])  # 3 dB at frame 52, above it from 53; the peak itself


def test_dlnco_decays_and_is_locally_normalized():
    onsets = np.zeros((60, 12))
    onsets[10, 4] = 3.0
    onsets[40, 7] = 0.3  # a soft onset far away weighs as much after the local normalization
    out = sync_features.dlnco(onsets, RATE)
    np.testing.assert_allclose(out[10:14, 4], np.sqrt(1.0 / np.arange(1, 5)), rtol=1e-6)
    assert out[14, 4] == 0 and out[9, 4] == 0
    np.testing.assert_allclose(out[40, 7], 1.0, rtol=1e-6)
    floor = sync_features.LOCAL_NORM_FLOOR  # near silence, onsets are divided by the floor instead
    np.testing.assert_allclose(sync_features.dlnco(onsets * 1e-2, RATE)[10, 4], 0.03 / floor, rtol=1e-6)


def test_score_onsets_and_decaying_chroma():
    n = int(4.0 * RATE) + 1
    onsets = sync_features.score_onsets(NOTES, RATE, n)
    assert onsets[int(0.9 * RATE), 4] == pytest.approx(1.0) and onsets[int(0.9 * RATE) - 1, 4] == 0
    chroma = sync_features.decaying_chroma(NOTES, RATE, n)
    held = chroma[int(1.7 * RATE):int(3.0 * RATE), 9]
    assert held[0] == pytest.approx(1.0) and np.all(np.diff(held) < 0)  # decays while held ...
    assert held[-1] == pytest.approx(np.exp(-(1.3 - 1 / RATE) / 2.0), rel=1e-3)
    after = chroma[int(3.0 * RATE) + 10, 9]  # ... and faster after the end
    assert 0 < after < held[-1] * np.exp(-0.2 / 0.2) * 1.01
    assert chroma[int(3.0 * RATE) + 31:, 9].max() == 0  # cut 3 release times after the end


def test_silence_is_trimmed_and_mapped_linearly(arpeggio):
    padded = np.concatenate([np.zeros(2 * SR, np.float32), arpeggio, np.zeros(3 * SR, np.float32)])
    n = int(len(padded) / SR * RATE) + 1
    start, stop = sync_features.active_frames(padded, SR, RATE, n, silence_db=30.0)
    assert abs(start / RATE - 2.5) < 0.05  # the first note, 2 s of silence + 0.5 s in
    assert 2.0 + 3.0 < stop / RATE < 2.0 + 4.0 + 0.5  # the chord's release ends before the appended silence
    assert sync_features.active_frames(padded, SR, RATE, n, silence_db=0) == (0, n)


def test_a_long_lead_in_and_tail_do_not_pull_the_first_note(arpeggio):
    """The score of the arpeggio against its recording with 2.5 s of silence before and 4 s after."""
    recording = np.concatenate([np.zeros(int(2.5 * SR), np.float32), arpeggio, np.zeros(4 * SR, np.float32)])
    onsets = np.asarray([note.onset_s for note in NOTES])
    errors = {}
    for silence_db in (30.0, 0.0):
        config = dataclasses.replace(sync.SyncConfig(), silence_db=silence_db)
        result = sync_features.align_prepared(sync_features.prepare_score(NOTES, 3.0, config),
                                              sync_features.prepare_audio(recording, SR, config), config)
        errors[silence_db] = np.abs(sync.warp_times(onsets, result.path, config.rate_hz) - (onsets + 2.5))
    assert errors[30.0].max() <= 0.04, errors[30.0]
    assert errors[0.0][0] > 1.0  # without trimming, the score's start is spread over the lead-in
    assert sync.SyncConfig().silence_db > 0 and sync.SyncConfig().onset_weight > 0  # the defaults use both


def test_a_beat_in_the_rest_before_the_first_note_keeps_its_distance(arpeggio):
    """The score's 0 s is a beat 0.5 s before its first note; the recording plays that rest after a
    2.5 s lead-in, so the beat falls at 2.5 s there, not at 0 s (where a line from corner to corner
    through both silences put it) and not at the first note."""
    recording = np.concatenate([np.zeros(int(2.5 * SR), np.float32), arpeggio, np.zeros(SR, np.float32)])
    config = sync.SyncConfig()
    result = sync_features.align_prepared(sync_features.prepare_score(NOTES, 3.0, config),
                                          sync_features.prepare_audio(recording, SR, config), config)
    assert abs(sync.warp_times(np.asarray([0.0, 0.25]), result.path, config.rate_hz) - [2.5, 2.75]).max() < 0.04


def test_score_audio_with_onsets_and_trimming_is_close(tiny_corpus):
    """Every version of the tiny corpus against its score, with the default features."""
    errors = []
    for version in tiny_corpus.versions:
        piece = tiny_corpus.pieces[version.piece_id]
        result = sync.sync_score_audio(piece, version.load_audio(), SR, sync.SyncConfig())
        errors.append(sync.beat_errors(result.path, result.rate_hz, piece.beats_q * 60.0 / piece.qpm, version.beats_s))
    stats = sync.beat_error_stats(np.concatenate(errors))
    assert stats["within_50ms_pct"] >= 80.0 and stats["mean_ms"] < 60.0, stats

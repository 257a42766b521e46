"""SoundFont renders (optional: fluidsynth and a General-MIDI SoundFont): the MIDI written keeps every
note's time, and the render sounds where the notes are."""

from __future__ import annotations

import os

import numpy as np
import pytest

from experiments.data import score, soundfont
from experiments.data.types import NoteEvent

NOTES = [NoteEvent(0.25, 0.75, 60, 0, 0.8), NoteEvent(0.5, 1.0, 64, 1, 0.5), NoteEvent(1.2345, 1.9, 67, 0, 1.0)]


def test_midi_file_keeps_note_times_to_the_millisecond(tmp_path):
    path = tmp_path / "notes.mid"
    path.write_bytes(soundfont.midi_bytes(NOTES, [0, 73]))
    piece = score.piece_from_midi(path)
    seconds_per_q = 60.0 / piece.qpm
    got = sorted((n.onset_q * seconds_per_q, n.offset_q * seconds_per_q, n.pitch) for n in piece.notes)
    want = sorted((n.onset_s, n.offset_s, n.pitch) for n in NOTES)
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=1e-3)


def test_too_many_parts_are_refused():
    with pytest.raises(ValueError, match="15 melodic channels"):
        soundfont.midi_bytes(NOTES, list(range(16)))


@pytest.mark.skipif(soundfont.find_soundfont() is None, reason="needs fluidsynth and a General-MIDI SoundFont")
def test_render_sounds_where_the_notes_are():
    sr = 22050
    audio = soundfont.render_soundfont(NOTES, [0, 73], sr, soundfont.find_soundfont(), tail_s=1.0)
    assert audio.dtype == np.float32 and 1.9 + 1.0 <= len(audio) / sr < 10.0  # the tails ring out
    frame = 512
    level = np.sqrt(np.mean(audio[: len(audio) // frame * frame].reshape(-1, frame) ** 2, axis=1))
    first = np.argmax(level > 0.05 * level.max()) * frame / sr
    assert abs(first - 0.25) < 0.05  # no latency: ground truth stays the notes' times
    assert level[: int(0.2 * sr / frame)].max() < 1e-3


def test_find_soundfonts_lists_each_file_once_in_order(tmp_path, monkeypatch):
    fluid, other, chosen = (tmp_path / name for name in ("FluidR3_GM.sf2", "Other.sf3", "Mine.sf2"))
    for path in (fluid, other, chosen):
        path.write_bytes(b"sf")
    (tmp_path / "default-GM.sf2").symlink_to(fluid)
    monkeypatch.setattr(soundfont.shutil, "which", lambda name: "/usr/bin/" + name)
    monkeypatch.setattr(soundfont, "SOUNDFONT_PATHS",
                        tuple(str(tmp_path / n) for n in ("FluidR3_GM.sf2", "missing.sf2", "default-GM.sf2", "Other.sf3")))
    monkeypatch.setenv("SDTW_SOUNDFONT", f"{chosen}{os.pathsep}{other}")
    assert soundfont.find_soundfonts() == [chosen.resolve(), other.resolve(), fluid.resolve()]
    assert soundfont.find_soundfont() == chosen.resolve()
    monkeypatch.setattr(soundfont.shutil, "which", lambda name: None)
    assert soundfont.find_soundfonts() == [] and soundfont.find_soundfont() is None

"""Plain data records of the corpus: notes, time maps, pieces, versions.

Units are part of every field name or docstring: ``*_q`` is score time in
quarter notes (music21's ``quarterLength``), ``*_s`` is audio time in seconds,
``pitch`` is a MIDI note number (60 = C4, may be fractional only inside the
synthesizer), ``part`` is the index of the voice in the score (0 = first staff).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "NoteEvent",
    "Performance",
    "Piece",
    "ScoreNote",
    "Theme",
    "TimeMap",
    "Version",
    "notes_to_array",
]


@dataclasses.dataclass(frozen=True)
class ScoreNote:
    """A note in score time.

    Attributes:
      onset_q: onset in quarter notes from the start of the score.
      offset_q: end in quarter notes (tied notes are merged).
      pitch: MIDI note number as written (before any transposition).
      part: index of the part (voice/staff) in the score.
    """

    onset_q: float
    offset_q: float
    pitch: int
    part: int


@dataclasses.dataclass(frozen=True)
class NoteEvent:
    """A note as sounded in one rendered version.

    Attributes:
      onset_s: onset in seconds from the start of the audio file.
      offset_s: nominal end in seconds (the release tail of the synthesizer
        rings on a little after it).
      pitch: sounding MIDI note number (transposition included, tuning
        deviation not included: see :attr:`Performance.tuning_cents`).
      part: index of the part in the score.
      velocity: loudness in (0, 1], linear amplitude scale before mixing.
    """

    onset_s: float
    offset_s: float
    pitch: int
    part: int
    velocity: float = 1.0


def notes_to_array(notes) -> np.ndarray:
    """Notes -> ``(K, 4)`` float64 array of (onset, offset, pitch, part).

    Works for :class:`ScoreNote` (columns in quarter notes) and
    :class:`NoteEvent` (columns in seconds).
    """
    rows = [(n.onset_q, n.offset_q, n.pitch, n.part) if isinstance(n, ScoreNote)
            else (n.onset_s, n.offset_s, n.pitch, n.part) for n in notes]
    return np.asarray(rows, dtype=np.float64).reshape(len(rows), 4)


@dataclasses.dataclass(frozen=True)
class TimeMap:
    """Monotone piecewise-linear map between score time and audio time.

    The renderer places every note through this map, so it *is* the ground
    truth: no approximation separates the map from the audio.

    Attributes:
      score_q: ``(P,)`` strictly increasing knots in quarter notes.
      audio_s: ``(P,)`` strictly increasing audio times in seconds.
    """

    score_q: np.ndarray
    audio_s: np.ndarray

    def to_seconds(self, quarters) -> np.ndarray:
        """Score time (quarter notes, any shape) -> audio time (seconds); linear extrapolation at the ends."""
        return _interp_extrapolate(quarters, self.score_q, self.audio_s)

    def to_quarters(self, seconds) -> np.ndarray:
        """Audio time (seconds) -> score time (quarter notes)."""
        return _interp_extrapolate(seconds, self.audio_s, self.score_q)

    def to_dict(self) -> dict[str, Any]:
        return {"score_q": self.score_q.tolist(), "audio_s": self.audio_s.tolist()}

    @classmethod
    def from_dict(cls, d) -> "TimeMap":
        return cls(np.asarray(d["score_q"], dtype=np.float64), np.asarray(d["audio_s"], dtype=np.float64))


def _interp_extrapolate(x, xp: np.ndarray, fp: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    y = np.interp(x, xp, fp)
    lo_slope = (fp[1] - fp[0]) / (xp[1] - xp[0])
    hi_slope = (fp[-1] - fp[-2]) / (xp[-1] - xp[-2])
    y = np.where(x < xp[0], fp[0] + (x - xp[0]) * lo_slope, y)
    return np.where(x > xp[-1], fp[-1] + (x - xp[-1]) * hi_slope, y)


@dataclasses.dataclass(frozen=True)
class Theme:
    """The theme of a piece: the first phrase of its principal voice.

    Defined as the notes of ``part`` from its first sounding note up to the
    end of the ``n_measures``-th measure that contains a note of that part
    (a pickup measure counts as the first measure).

    Attributes:
      part: index of the principal voice.
      start_q, end_q: span in quarter notes.
      notes: the theme's notes in score time (monophonic for most scores;
        chords keep all their pitches).
    """

    part: int
    start_q: float
    end_q: float
    notes: tuple[ScoreNote, ...]


@dataclasses.dataclass(frozen=True)
class Piece:
    """A score of the corpus.

    Attributes:
      piece_id: stable identifier (derived from the music21 corpus path).
      source: music21 corpus path or file path it was parsed from.
      title, composer: metadata (may be empty).
      part_names: name of each part, index = ``ScoreNote.part``.
      qpm: nominal tempo in quarter notes per minute.
      notes: all notes in score time, sorted by onset.
      beats_q: ``(B,)`` beat positions in quarter notes (time signature beats).
      measures_q: ``(K,)`` measure start positions in quarter notes.
      end_q: end of the score in quarter notes.
      theme: the theme (see :class:`Theme`).
    """

    piece_id: str
    source: str
    title: str
    composer: str
    part_names: tuple[str, ...]
    qpm: float
    notes: tuple[ScoreNote, ...]
    beats_q: np.ndarray
    measures_q: np.ndarray
    end_q: float
    theme: Theme


@dataclasses.dataclass(frozen=True)
class Performance:
    """The performance parameters that make one version differ from another.

    Attributes:
      tempo_factor: global tempo relative to the score's nominal tempo (>1 faster).
      local_tempo_depth: standard deviation of the smooth log-tempo curve.
      tuning_cents: global tuning deviation in cents (applies to every note).
      transpose: transposition in semitones.
      instruments: synthesizer preset name per part.
      gain_db: overall level in dB relative to full scale of the dry mix.
      snr_db: signal-to-noise ratio of the added noise in dB (``inf`` = none).
      rt60_s: reverberation time of the synthetic room in seconds (0 = dry).
      lead_in_s: silence before the first beat in seconds.
      seed: the integer seed everything random in this version derives from.
    """

    tempo_factor: float
    local_tempo_depth: float
    tuning_cents: float
    transpose: int
    instruments: tuple[str, ...]
    gain_db: float
    snr_db: float
    rt60_s: float
    lead_in_s: float
    seed: int


@dataclasses.dataclass(frozen=True)
class Version:
    """One rendered performance of a piece, with exact ground truth.

    Attributes:
      version_id: ``"{piece_id}__v{index}"``.
      piece_id: the :class:`Piece` it performs.
      index: version number within the piece.
      performance: the parameters it was rendered with.
      sample_rate: audio sample rate in Hz.
      duration_s: audio length in seconds.
      time_map: score time <-> audio time.
      notes: sounded notes in seconds, sorted by onset.
      beats_s: ``(B,)`` audio time of every beat of ``Piece.beats_q``.
      measures_s: ``(K,)`` audio time of every measure start.
      theme_start_s, theme_end_s: location of the theme in the audio.
      audio_path: where the audio lies (float32 WAV), or None if only in memory.
    """

    version_id: str
    piece_id: str
    index: int
    performance: Performance
    sample_rate: int
    duration_s: float
    time_map: TimeMap
    notes: tuple[NoteEvent, ...]
    beats_s: np.ndarray
    measures_s: np.ndarray
    theme_start_s: float
    theme_end_s: float
    audio_path: Path | None = None

    def load_audio(self) -> np.ndarray:
        """Read the audio: ``(num_samples,)`` float32 mono at ``sample_rate``."""
        if self.audio_path is None:
            raise ValueError(f"version {self.version_id} has no audio file")
        import soundfile

        audio, sr = soundfile.read(str(self.audio_path), dtype="float32", always_2d=False)
        if sr != self.sample_rate:
            raise ValueError(f"{self.audio_path}: sample rate {sr} Hz, expected {self.sample_rate} Hz")
        return audio

"""Features for synchronization: chroma for the harmony, DLNCO for where notes start.

A feature row is 12 chroma values, followed by 12 DLNCO values when ``config.onset_weight > 0``
(the layout :func:`experiments.sync.dtw.sync_cost` reads).

DLNCO (decaying locally adaptive normalized chroma onsets; Ewert, Müller & Grosche, ICASSP 2009):
the level in dB of every semitone (a constant-Q transform, 5.8 ms hop) rises where a note starts
and stays up (where vibrato or a sampled loop moves it, it falls back); the peaks of that rise,
each moved back to where the rise begins (and further the less it rises above what sounded
before) and later by the lead of its semitone's window, log-compressed, are summed per pitch
class into chroma onsets at the feature rate; each frame is divided by the largest onset norm
within 0.8 s (so soft and loud passages weigh alike), and every onset decays over the next
0.08 s (weights sqrt(1/n)), so that a cost between two versions rewards onsets that are close,
not only those that coincide.
A score gives the same features from its note starts.

The same chroma onsets also pick the anchors of a path (``SyncConfig.anchor_threshold``): their
norm per frame is :attr:`Prepared.onsets`.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np
from scipy.ndimage import maximum_filter1d

from experiments import features, timebase
from experiments.data.types import NoteEvent, Piece
from experiments.sync.config import SyncConfig, SyncResult
from experiments.sync.dtw import align

__all__ = ["Prepared", "active_frames", "align_prepared", "audio_chroma", "audio_chroma_onsets", "audio_onsets",
           "chroma_onsets", "compress_chroma", "decaying_chroma", "dlnco", "pitch_onsets", "prepare_audio",
           "prepare_score", "score_active_frames", "score_chroma_onsets", "score_events", "score_onsets",
           "rise_depth", "rise_start", "semitone_window_s", "sustained_rise", "sync_audio", "sync_score_audio"]

LOWEST_MIDI = 24          # C1; with 84 semitones up to B7
N_SEMITONES = 84
ONSET_HOP = 128           # samples of the semitone energy (5.8 ms at 22.05 kHz)
ONSET_GAMMA = 1e4         # log compression of onset strengths (relative to the strongest)
LEVEL_FLOOR_DB = 50.0     # semitone levels are dB above this far under the loudest
SUSTAIN_S = 0.1           # an onset raises the mean level of the next 0.1 s over the previous 0.1 s ...
MIN_SUSTAINED_DB = 12.0   # ... by at least this much (chosen on train pieces, both renderers)
WINDOW_LEAD = 0.3         # a semitone's window sees a note this fraction of its length early
RISE_START_DB = 3.0       # an onset is where the level climbs this far over its level before the rise
CLEAR_RISE_DB = 42.0      # a note rising this far above what sounded before is found where it starts ...
MASKED_LAG_S_PER_DB = 8e-4  # ... one rising less, this much later per dB short (train pieces: 0.6-1.0 ms)
RISE_HORIZON_S = 0.25     # a rise's top is the highest level this long after its start
LOCAL_NORM_S = 0.8        # window of the local normalization
LOCAL_NORM_FLOOR = 0.1    # below this local norm, onsets are not lifted (near silence)
DECAY_S = 0.08            # an onset decays over this long, weights sqrt(1/n) frame by frame (train pieces)
SCORE_DECAY_S = 2.0       # time constant of a held note in a score's chroma
SCORE_RELEASE_S = 0.2     # ... and after its end


def compress_chroma(chroma: np.ndarray, gamma: float) -> np.ndarray:
    """Logarithmic compression ``log(1 + gamma * chroma / max)`` (Müller, FMP sec. 3.1.2.1).

    Lifts the weak pitch classes of soft passages, so that the cosine cost
    compares harmony rather than loudness; ``gamma = 0`` returns the input.
    """
    if gamma <= 0:
        return chroma
    return np.log1p(gamma * chroma / max(float(chroma.max()), 1e-12)).astype(np.float32)


def audio_chroma(audio: np.ndarray, sr: int, config: SyncConfig = None) -> np.ndarray:
    """Chroma ``(T, 12)`` at ``config.rate_hz`` as used for synchronization."""
    config = config or SyncConfig()
    if config.feature == "cens":
        # CENS with a short window at the fine rate (like CENS^9_1 for synchronization).
        return features.chroma_cens(audio, sr, rate_hz=config.rate_hz, chroma_rate_hz=config.rate_hz,
                                    win_len_smooth=9)
    if config.feature == "chroma_cqt":
        chroma = features.chroma_cqt(audio, sr, rate_hz=config.rate_hz, norm=None)
    elif config.feature == "chroma_stft":
        chroma = features.chroma_stft(audio, sr, rate_hz=config.rate_hz, norm=None)
    else:
        raise ValueError(f"unknown synchronization feature {config.feature!r}")
    return compress_chroma(chroma, config.log_compression)


def pitch_onsets(audio: np.ndarray, sr: int, *, hop: int = ONSET_HOP, window_s: float = 1.0,
                 floor_db: float = LEVEL_FLOOR_DB, sustain_s: float = SUSTAIN_S,
                 min_sustained_db: float = MIN_SUSTAINED_DB, window_lead: float = WINDOW_LEAD,
                 rise_start_db: float | None = RISE_START_DB, masked_lag_s_per_db: float = MASKED_LAG_S_PER_DB
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Note-start candidates of every semitone: ``(times_s, midi_pitches, strengths)``, each ``(K,)``.

    A semitone's level is its energy in dB above a floor ``floor_db`` under the loudest bin of the
    recording. A candidate is a peak of the level's half-wave rectified rise (over two hops,
    centred) where

    - the level stays up: its mean over the next ``sustain_s`` exceeds its mean over the previous
      ``sustain_s`` by at least ``min_sustained_db``. Vibrato, tremolo and the loops of sampled
      sustains move a held note's level up and down by a few dB; a note that starts raises it
      for good. Without this test a held flute gave as many "onsets" as notes;
    - the rise is at least 2/3 of the largest rise of that semitone within ``window_s`` (the
      local threshold of the Sync Toolbox's implementation).

    Each candidate's time is where its rise begins (:func:`rise_start`: the level stays
    ``rise_start_db`` over what it was before; None: the peak of the rise), moved earlier by
    ``masked_lag_s_per_db`` for every dB by which the note rises less than ``CLEAR_RISE_DB`` above
    what sounded before (:func:`rise_depth`): a note that starts under other sounds of its
    semitone (partials of other voices, its own previous note) shows only once it climbs out of
    them. On the train pieces (both renderers) the median lag to the true note start grew from
    4 ms for rises over 38 dB to 21 ms for rises under 21 dB.

    Strengths are relative to the strongest rise of the recording. The rise of a level in dB
    peaks where a note emerges from what was sounding before, near its start; the rise of linear
    energy peaks where an attack is steepest, late in a slow one.

    A semitone's level is measured through a centred window as long as its constant-Q filter
    (:func:`semitone_window_s`: 265 ms at C2, 33 ms at C5), and a note emerges from the floor as
    soon as the window's leading edge reaches it: each candidate is moved
    ``window_lead`` of its window later. Without that, onsets of the bass came 50-110 ms before the
    note and onsets of the treble on time, so two instruments with different spectra disagreed
    about when the same note started.
    """
    import librosa

    energy = np.abs(librosa.cqt(audio, sr=sr, hop_length=hop, fmin=librosa.midi_to_hz(LOWEST_MIDI),
                                n_bins=N_SEMITONES, bins_per_octave=12)) ** 2          # (P, T)
    level = 10.0 * np.log10(1.0 + 10.0 ** (floor_db / 10.0) * energy / max(float(energy.max()), 1e-20))
    rise = np.zeros_like(level)
    rise[:, 1:-1] = np.maximum(level[:, 2:] - level[:, :-2], 0.0)
    window = max(3, int(round(window_s * sr / hop)))
    is_peak = (rise == maximum_filter1d(rise, size=3, axis=1)) & (rise > 0)
    is_strong = rise >= (2.0 / 3.0) * maximum_filter1d(rise, size=window, axis=1)
    width = max(1, int(round(sustain_s * sr / hop)))
    stays_up = sustained_rise(level, width) >= min_sustained_db
    semitones, peaks = np.nonzero(is_peak & is_strong & stays_up)
    frames = peaks if rise_start_db is None else rise_start(level, semitones, peaks, width, rise_start_db)
    depth_db = rise_depth(level, semitones, frames, int(RISE_HORIZON_S * sr / hop))
    shortfall_db = np.maximum(CLEAR_RISE_DB - depth_db, 0.0)
    times = (frames * hop / sr + window_lead * semitone_window_s(sr)[semitones]
             - masked_lag_s_per_db * shortfall_db)
    return times, semitones + LOWEST_MIDI, rise[semitones, peaks] / max(float(rise.max()), 1e-20)


def rise_start(level: np.ndarray, semitones: np.ndarray, peaks: np.ndarray, width: int, margin_db: float
               ) -> np.ndarray:
    """``(K,)`` frames where each rise begins: among the ``width`` frames up to its peak
    ``level[semitones, peaks]``, the first after which the level stays more than ``margin_db``
    above what it was before, its mean over the ``width`` frames before those (the peak itself
    where the level never comes that low).

    A slow attack (a bowed string, an organ pipe speaking) rises fastest well after it begins,
    most of all when it climbs out of other sounds rather than out of silence.
    """
    lags = np.arange(-2 * width, 1)
    rows = level[semitones[:, None], np.maximum(peaks[:, None] + lags, 0)]   # (K, 2 width + 1); the edge repeats
    before, search = rows[:, :width], rows[:, width:]
    low = search <= before.mean(axis=1, keepdims=True) + margin_db
    last_low = width - np.argmax(low[:, ::-1], axis=1)                        # index into ``search``
    return np.where(low.any(axis=1), np.minimum(peaks - width + last_low + 1, peaks), peaks)


def rise_depth(level: np.ndarray, semitones: np.ndarray, starts: np.ndarray, horizon: int,
               lead_in: int = 3) -> np.ndarray:
    """``(K,)`` dB by which each rise climbs: the highest level of ``level[semitones]`` in the
    ``horizon`` frames from ``starts`` minus the level ``lead_in`` frames before the start (the
    edges repeat the first and last frame)."""
    last = level.shape[1] - 1
    after = level[semitones[:, None], np.minimum(starts[:, None] + np.arange(horizon), last)]
    return after.max(axis=1) - level[semitones, np.maximum(starts - lead_in, 0)]


def semitone_window_s(sr: int) -> np.ndarray:
    """``(N_SEMITONES,)`` length in seconds of the constant-Q filter (Hann window) of each semitone
    analysed by :func:`pitch_onsets`, from MIDI ``LOWEST_MIDI`` up."""
    import librosa

    freqs = librosa.midi_to_hz(np.arange(LOWEST_MIDI, LOWEST_MIDI + N_SEMITONES))
    lengths, _ = librosa.filters.wavelet_lengths(freqs=freqs, sr=sr, window="hann")
    return np.asarray(lengths) / sr


def sustained_rise(level: np.ndarray, width: int) -> np.ndarray:
    """``(P, T)`` -> ``(P, T)``: the mean of ``level`` over the ``width`` frames after each frame minus
    its mean over the ``width`` frames before (the edges repeat the first and last frame)."""
    padded = np.pad(level, ((0, 0), (width, width)), mode="edge")
    sums = np.concatenate([np.zeros((len(level), 1)), np.cumsum(padded, axis=1)], axis=1)
    p = np.arange(level.shape[1]) + width                    # index of each frame in ``padded``
    after = sums[:, p + width + 1] - sums[:, p + 1]
    before = sums[:, p] - sums[:, p - width]
    return (after - before) / width


def chroma_onsets(times_s: np.ndarray, pitches: np.ndarray, strengths: np.ndarray, rate_hz: float,
                  n_frames: int, *, gamma: float = ONSET_GAMMA) -> np.ndarray:
    """``(n_frames, 12)``: ``log(1 + gamma * strength)`` of the onsets summed per frame and pitch class."""
    out = np.zeros((n_frames, 12))
    frames = np.clip(np.round(np.asarray(times_s) * rate_hz).astype(np.int64), 0, max(n_frames - 1, 0))
    np.add.at(out, (frames, np.asarray(pitches, np.int64) % 12), np.log1p(gamma * np.asarray(strengths, float)))
    return out


def dlnco(onsets: np.ndarray, rate_hz: float, *, local_norm_s: float = LOCAL_NORM_S,
          floor: float = LOCAL_NORM_FLOOR, decay_s: float = DECAY_S) -> np.ndarray:
    """Chroma onsets ``(T, 12)`` -> DLNCO ``(T, 12)`` float32: locally normalized, then decaying
    over ``decay_s``: the n-th frame of an onset weighs sqrt(1/n)."""
    norms = np.linalg.norm(onsets, axis=1)
    size = 2 * int(local_norm_s * rate_hz / 2) + 1
    local = np.maximum(maximum_filter1d(norms, size=size, mode="constant"), floor)
    normalized = onsets / local[:, None]
    out = normalized.copy()
    decay = np.sqrt(1.0 / np.arange(1, max(1, int(round(decay_s * rate_hz))) + 1))
    for lag, weight in enumerate(decay[1:], start=1):
        out[lag:] = np.maximum(out[lag:], weight * normalized[:-lag])
    return out.astype(np.float32)


def audio_onsets(audio: np.ndarray, sr: int, rate_hz: float, n_frames: int) -> np.ndarray:
    """DLNCO ``(n_frames, 12)`` of a recording at ``rate_hz``."""
    return dlnco(audio_chroma_onsets(audio, sr, rate_hz, n_frames), rate_hz)


def audio_chroma_onsets(audio: np.ndarray, sr: int, rate_hz: float, n_frames: int) -> np.ndarray:
    """Chroma onsets ``(n_frames, 12)`` of a recording (:func:`chroma_onsets` of its :func:`pitch_onsets`)."""
    return chroma_onsets(*pitch_onsets(audio, sr), rate_hz, n_frames)


def score_chroma_onsets(events: Sequence[NoteEvent], rate_hz: float, n_frames: int) -> np.ndarray:
    """Chroma onsets ``(n_frames, 12)`` of notes: every note start is an onset of strength ``velocity ** 2``."""
    times = np.asarray([e.onset_s for e in events])
    pitches = np.asarray([e.pitch for e in events], np.int64)
    strengths = np.asarray([float(e.velocity) ** 2 for e in events])
    return chroma_onsets(times, pitches, strengths, rate_hz, n_frames)


def score_onsets(events: Sequence[NoteEvent], rate_hz: float, n_frames: int) -> np.ndarray:
    """DLNCO ``(n_frames, 12)`` of notes (:func:`score_chroma_onsets`)."""
    return dlnco(score_chroma_onsets(events, rate_hz, n_frames), rate_hz)


def _with_onsets(chroma: np.ndarray, onsets: np.ndarray | None, config: SyncConfig) -> np.ndarray:
    """The feature rows: chroma, followed by the DLNCO of ``onsets`` when ``config.onset_weight > 0``."""
    if not config.onset_weight:
        return chroma
    return np.concatenate([chroma, dlnco(onsets, config.rate_hz)], axis=1)


def _needs_onsets(config: SyncConfig) -> bool:
    return bool(config.onset_weight or config.anchor_threshold)


def decaying_chroma(events: Sequence[NoteEvent], rate_hz: float, n_frames: int, *, decay_s: float = SCORE_DECAY_S,
                    release_s: float = SCORE_RELEASE_S) -> np.ndarray:
    """Chroma ``(n_frames, 12)`` of notes as they sound: each note starts at 1, decays with time
    constant ``decay_s`` while held and with ``release_s`` after its end (cut at 3 ``release_s``).

    On/off chroma of a score stops where a recording still rings (release, reverb) and weighs a
    held note like a fresh one; a score aligned with it came out late by tens of milliseconds.
    """
    chroma = np.zeros((n_frames, 12), np.float32)
    times = timebase.frame_times(n_frames, rate_hz)
    for note in events:
        start = int(np.searchsorted(times, note.onset_s - 0.5 / rate_hz))
        stop = int(np.searchsorted(times, note.offset_s + 3.0 * release_s, side="right"))
        t = times[start:stop]
        envelope = np.exp(-(t - note.onset_s).clip(0) / decay_s - (t - note.offset_s).clip(0) / release_s)
        column = chroma[start:stop, note.pitch % 12]
        np.maximum(column, envelope, out=column)
    return chroma


def active_frames(audio: np.ndarray, sr: int, rate_hz: float, n_frames: int, silence_db: float
                  ) -> tuple[int, int]:
    """``[start, stop)``: from the first to the last frame louder than the loudest minus ``silence_db``
    (RMS over 46 ms); the whole sequence when ``silence_db <= 0`` or nothing is that loud."""
    import librosa

    if silence_db <= 0:
        return 0, n_frames
    hop = 256
    rms = librosa.feature.rms(y=audio, frame_length=1024, hop_length=hop)[0]
    level = timebase.resample_frames(20.0 * np.log10(rms + 1e-10)[:, None], sr / hop, rate_hz, n_frames)[:, 0]
    loud = np.nonzero(level > level.max() - silence_db)[0]
    return (int(loud[0]), int(loud[-1]) + 1) if len(loud) else (0, n_frames)


def score_active_frames(events: Sequence[NoteEvent], rate_hz: float, n_frames: int) -> tuple[int, int]:
    """``[start, stop)``: from the frame of the first note start to that of the last note end."""
    if not events:
        return 0, n_frames
    start = int(round(min(e.onset_s for e in events) * rate_hz))
    stop = int(round(max(e.offset_s for e in events) * rate_hz)) + 1
    return min(start, n_frames - 1), min(max(stop, start + 1), n_frames)


class Prepared(NamedTuple):
    """What :func:`~experiments.sync.dtw.align` needs of one side.

    Attributes:
      features: ``(T, 12)`` chroma, or ``(T, 24)`` chroma and DLNCO when ``config.onset_weight > 0``
        (a score: :func:`decaying_chroma` and the DLNCO of its note starts).
      active: ``[start, stop)`` frames where it is not silent (a score: from the first note start
        to the last note end).
      onsets: ``(T,)`` onset strength of every frame (the norm of its chroma onsets), or None
        where the config uses no onsets.
    """

    features: np.ndarray
    active: tuple[int, int]
    onsets: np.ndarray | None = None


def _onset_strength(chroma_onsets: np.ndarray | None) -> np.ndarray | None:
    return None if chroma_onsets is None else np.linalg.norm(chroma_onsets, axis=1)


def prepare_audio(audio: np.ndarray, sr: int, config: SyncConfig) -> Prepared:
    """What :func:`~experiments.sync.dtw.align` needs of a recording: features, where it is not
    silent, and its onsets (one semitone analysis serves the DLNCO and the onset anchors)."""
    chroma = audio_chroma(audio, sr, config)
    onsets = audio_chroma_onsets(audio, sr, config.rate_hz, len(chroma)) if _needs_onsets(config) else None
    active = active_frames(audio, sr, config.rate_hz, len(chroma), config.silence_db)
    return Prepared(_with_onsets(chroma, onsets, config), active, _onset_strength(onsets))


def prepare_score(events: Sequence[NoteEvent], seconds: float, config: SyncConfig) -> Prepared:
    """What :func:`~experiments.sync.dtw.align` needs of a score: features, the span of its notes
    and their onsets."""
    n_frames = timebase.num_frames(seconds, config.rate_hz)
    chroma = decaying_chroma(events, config.rate_hz, n_frames)
    onsets = score_chroma_onsets(events, config.rate_hz, n_frames) if _needs_onsets(config) else None
    active = score_active_frames(events, config.rate_hz, n_frames)
    return Prepared(_with_onsets(chroma, onsets, config), active, _onset_strength(onsets))


def align_prepared(a: Prepared, b: Prepared, config: SyncConfig) -> SyncResult:
    """:func:`~experiments.sync.dtw.align` of two prepared sequences (anchored at the onsets of ``a``)."""
    return align(a.features, b.features, config, active_x=a.active, active_y=b.active, onsets_x=a.onsets)


def sync_audio(audio_a: np.ndarray, audio_b: np.ndarray, sr: int,
               config: SyncConfig = SyncConfig()) -> SyncResult:
    """Synchronize two recordings (mono float arrays at ``sr`` Hz), each trimmed of silence."""
    return align_prepared(prepare_audio(audio_a, sr, config), prepare_audio(audio_b, sr, config), config)


def score_events(piece: Piece, qpm: float | None = None) -> list[NoteEvent]:
    """Notes of a score in seconds at a constant tempo (default: the piece's ``qpm``)."""
    seconds_per_q = 60.0 / float(qpm or piece.qpm)
    return [NoteEvent(n.onset_q * seconds_per_q, n.offset_q * seconds_per_q, n.pitch, n.part)
            for n in piece.notes]


def sync_score_audio(piece: Piece, audio: np.ndarray, sr: int,
                     config: SyncConfig = SyncConfig()) -> SyncResult:
    """Synchronize a score (sequence A, at its nominal tempo) with a recording (B).

    The score side is :func:`prepare_score` of its notes; path times on the A axis are
    score seconds at ``piece.qpm`` (score quarter = seconds * qpm / 60).
    """
    score = prepare_score(score_events(piece), piece.end_q * 60.0 / piece.qpm, config)
    return align_prepared(score, prepare_audio(audio, sr, config), config)

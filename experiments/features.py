"""Audio and symbolic features on a common frame grid.

Audio features come from librosa. librosa's constant-Q transform is fast only
when the hop size has many factors of two, while the feature rate of an
experiment (10 Hz, 1 Hz, ...) rarely gives such a hop. So every audio feature
is analysed at ``analysis_hop`` samples (default 512) and then brought to
``rate_hz`` by :func:`experiments.timebase.resample_frames`; frame ``k`` of
every result is the instant ``k / rate_hz`` seconds (see
:mod:`experiments.timebase`). All audio features return float32 ``(T, D)``
arrays (``(T, H, F)`` for the HCQT) with ``T = num_frames(len(y)/sr, rate_hz)``.

Symbolic features (chroma, piano roll, CTC labels) are computed from
:class:`~experiments.data.types.NoteEvent` lists on the same grid, so audio
and score frames line up one to one.

References:
  M. Müller, F. Kurth, M. Clausen. Audio matching via chroma-based statistical
  features (CENS). ISMIR 2005.
  R. Bittner et al. Deep salience representations for F0 estimation in
  polyphonic music (HCQT). ISMIR 2017.
  F. Korzeniowski, G. Widmer. Feature learning for chord recognition: the deep
  chroma extractor (log-frequency spectrogram input). ISMIR 2016.
  F. Zalkow, M. Müller. CTC-based learning of chroma features for score-audio
  music retrieval. IEEE/ACM TASLP 2021 (13 classes: 12 chroma + blank).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Iterable, Mapping, Sequence

import numpy as np

from experiments import timebase
from experiments.config import from_config

if TYPE_CHECKING:  # annotations only: experiments.data imports FeatureConfig from here
    from experiments.data.types import NoteEvent

__all__ = [
    "FeatureConfig",
    "audio_features",
    "chroma_cens",
    "chroma_cqt",
    "chroma_label_sequence",
    "chroma_stft",
    "corpus_features",
    "framewise_chroma_labels",
    "hcqt",
    "log_frequency_spectrogram",
    "notes_to_chroma",
    "notes_to_pianoroll",
    "pad_label_sequences",
]

HCQT_HARMONICS = (0.5, 1.0, 2.0, 3.0, 4.0, 5.0)


@dataclasses.dataclass
class FeatureConfig:
    """Which feature and at what rate (see ``conf/data/*.yaml``, key ``features``).

    Attributes:
      kind: ``chroma_stft``, ``chroma_cqt``, ``cens``, ``hcqt`` or ``logfreq``.
      rate_hz: output frame rate in Hz.
      analysis_hop: librosa hop in samples before resampling to ``rate_hz``.
      cens_chroma_rate_hz: chroma rate that ``cens_win_len_smooth`` refers to.
      cens_win_len_smooth: CENS smoothing window in frames at ``cens_chroma_rate_hz``
        (Müller et al. 2005: 41 frames at 10 Hz = 4.1 s, then downsampled to 1 Hz
        by ``rate_hz = 1``).
    """

    kind: str = "chroma_cqt"
    rate_hz: float = 10.0
    analysis_hop: int = 512
    cens_chroma_rate_hz: float = 10.0
    cens_win_len_smooth: int = 41


def _to_rate(frames_by_time: np.ndarray, sr: int, hop: int, rate_hz: float, n_samples: int) -> np.ndarray:
    """librosa's ``(D, T_analysis)`` -> ``(T, D)`` at ``rate_hz`` (float32)."""
    n_target = timebase.num_frames(n_samples / sr, rate_hz)
    return timebase.resample_frames(frames_by_time.T.astype(np.float32), sr / hop, rate_hz, n_target)


def chroma_stft(y: np.ndarray, sr: int, *, rate_hz: float = 10.0, n_fft: int = 4096,
                analysis_hop: int = 512, norm: float | None = np.inf) -> np.ndarray:
    """STFT chroma (librosa.feature.chroma_stft): ``(T, 12)``, pitch class C = 0."""
    import librosa

    c = librosa.feature.chroma_stft(y=y, sr=sr, n_fft=n_fft, hop_length=analysis_hop, norm=norm)
    return _to_rate(c, sr, analysis_hop, rate_hz, len(y))


def chroma_cqt(y: np.ndarray, sr: int, *, rate_hz: float = 10.0, analysis_hop: int = 512,
               bins_per_octave: int = 36, norm: float | None = np.inf) -> np.ndarray:
    """CQT chroma (librosa.feature.chroma_cqt; tuning estimated from the signal): ``(T, 12)``."""
    import librosa

    c = librosa.feature.chroma_cqt(y=y, sr=sr, hop_length=analysis_hop,
                                   bins_per_octave=bins_per_octave, norm=norm)
    return _to_rate(c, sr, analysis_hop, rate_hz, len(y))


def cens_window(win_len_smooth: int, chroma_rate_hz: float, analysis_rate_hz: float) -> int:
    """CENS window length expressed at the analysis rate (odd, in frames).

    ``win_len_smooth`` frames at ``chroma_rate_hz`` last ``win_len_smooth /
    chroma_rate_hz`` seconds; the same duration at ``analysis_rate_hz``.
    """
    frames = int(round(win_len_smooth * analysis_rate_hz / chroma_rate_hz))
    return frames + 1 - frames % 2


def chroma_cens(y: np.ndarray, sr: int, *, rate_hz: float = 1.0, chroma_rate_hz: float = 10.0,
                win_len_smooth: int = 41, analysis_hop: int = 512) -> np.ndarray:
    """CENS (librosa.feature.chroma_cens): ``(T, 12)`` unit-L2 frames at ``rate_hz``.

    Müller, Kurth, Clausen (2005): chroma at 10 Hz, quantised, smoothed with a
    41-frame (4.1 s) Hann window and downsampled by 10 to 1 Hz (CENS^41_10).
    The window duration is kept when analysing at ``analysis_hop``; the
    smoothing is the anti-aliasing filter of the downsampling to ``rate_hz``.
    """
    import librosa

    window = cens_window(win_len_smooth, chroma_rate_hz, sr / analysis_hop)
    c = librosa.feature.chroma_cens(y=y, sr=sr, hop_length=analysis_hop, win_len_smooth=window)
    return _to_rate(c, sr, analysis_hop, rate_hz, len(y))


def hcqt(y: np.ndarray, sr: int, *, rate_hz: float = 10.0, harmonics: Sequence[float] = HCQT_HARMONICS,
         fmin: float = 32.70319566257483, n_octaves: int = 6, bins_per_semitone: int = 3,
         analysis_hop: int = 512) -> np.ndarray:
    """Harmonic CQT (Bittner et al. 2017): ``(T, H, F)`` log-compressed magnitudes.

    Channel ``h`` is a CQT whose lowest bin is ``harmonics[h] * fmin`` (default
    C1), so bin ``f`` of every channel sits on the ``harmonics[h]``-th partial of
    the same fundamental. Values are ``log(1 + 10 |CQT|)``. Bins above Nyquist
    are not computed: the top channel's range must fit ``sr / 2``.
    """
    import librosa

    bins_per_octave = 12 * bins_per_semitone
    channels = []
    for h in harmonics:
        c = np.abs(librosa.cqt(y, sr=sr, hop_length=analysis_hop, fmin=fmin * h,
                               n_bins=n_octaves * bins_per_octave, bins_per_octave=bins_per_octave))
        channels.append(_to_rate(np.log1p(10.0 * c), sr, analysis_hop, rate_hz, len(y)))
    return np.stack(channels, axis=1)


def log_frequency_spectrogram(y: np.ndarray, sr: int, *, rate_hz: float = 10.0,
                              fmin: float = 65.40639132514966, n_octaves: int = 5,
                              bins_per_octave: int = 24, analysis_hop: int = 512) -> np.ndarray:
    """Log-frequency, log-magnitude spectrogram ``(T, n_octaves * bins_per_octave)``.

    A constant-Q spectrogram with 24 bins per octave from C2 over 5 octaves
    (about the 65-2100 Hz range of Korzeniowski & Widmer 2016), ``log(1 + |CQT|)``.
    """
    import librosa

    c = np.abs(librosa.cqt(y, sr=sr, hop_length=analysis_hop, fmin=fmin,
                           n_bins=n_octaves * bins_per_octave, bins_per_octave=bins_per_octave))
    return _to_rate(np.log1p(c), sr, analysis_hop, rate_hz, len(y))


def audio_features(y: np.ndarray, sr: int, config: FeatureConfig | Mapping | None = None) -> np.ndarray:
    """Compute the feature named by ``config.kind`` at ``config.rate_hz``."""
    config = from_config(FeatureConfig, config or {})
    common = {"rate_hz": config.rate_hz, "analysis_hop": config.analysis_hop}
    if config.kind == "chroma_stft":
        return chroma_stft(y, sr, **common)
    if config.kind == "chroma_cqt":
        return chroma_cqt(y, sr, **common)
    if config.kind == "cens":
        return chroma_cens(y, sr, chroma_rate_hz=config.cens_chroma_rate_hz,
                           win_len_smooth=config.cens_win_len_smooth, **common)
    if config.kind == "hcqt":
        return hcqt(y, sr, **common)
    if config.kind == "logfreq":
        return log_frequency_spectrogram(y, sr, **common)
    raise ValueError(f"unknown feature kind {config.kind!r}")


def corpus_features(corpus, config: FeatureConfig | Mapping | None = None, *, progress: bool = True,
                    use_cache: bool = True) -> dict[str, np.ndarray]:
    """Features of every version of a corpus: ``version_id -> (T, ...)`` float32 at ``config.rate_hz``.

    Cached next to the corpus in ``{corpus.root}/features/{kind}-{hash}/``
    (one ``.npy`` per version, written atomically), so a second call only reads.
    """
    import dataclasses as _dc

    from experiments.data import cache
    from experiments.workers import map_in_workers

    config = from_config(FeatureConfig, config or {})
    folder = corpus.root / "features" / f"{config.kind}-{cache.config_hash(_dc.asdict(config))}"
    paths = {v.version_id: folder / f"{v.version_id}.npy" if use_cache else None for v in corpus.versions}
    pending = [v for v in corpus.versions if paths[v.version_id] is None or not paths[v.version_id].exists()]
    # Computed over the cores (librosa runs on one each), cached ones only read.
    computed = map_in_workers(_version_features, [(v, config, paths[v.version_id]) for v in pending],
                              desc=f"features ({config.kind})", progress=progress)
    result = dict(zip((v.version_id for v in pending), computed))
    return {v.version_id: result[v.version_id] if v.version_id in result else np.load(paths[v.version_id])
            for v in corpus.versions}


def _version_features(job: tuple) -> np.ndarray:
    """Features of ``(version, config, cache path or None)``, written to the path (a worker's job)."""
    from experiments.data import cache

    version, config, path = job
    values = audio_features(version.load_audio(), version.sample_rate, config)
    if path is not None:
        cache.atomic_write(path, lambda tmp: np.save(tmp, values, allow_pickle=False))
    return values


# ----------------------------------------------------------------------------- symbolic
def _note_frames(notes: Iterable[NoteEvent], rate_hz: float, n_frames: int):
    """(start, stop) frame ranges of notes; every note covers at least its onset frame."""
    for note in notes:
        start = int(timebase.seconds_to_frames(note.onset_s, rate_hz))
        stop = int(timebase.seconds_to_frames(note.offset_s, rate_hz))
        start = min(max(start, 0), n_frames - 1)
        yield note, start, max(stop, start + 1)


def _frames_for(notes: Sequence[NoteEvent], rate_hz: float, n_frames: int | None) -> int:
    if n_frames is not None:
        return int(n_frames)
    end = max((n.offset_s for n in notes), default=0.0)
    return timebase.num_frames(end, rate_hz)


def notes_to_pianoroll(notes: Sequence[NoteEvent], rate_hz: float, n_frames: int | None = None, *,
                       use_velocity: bool = False) -> np.ndarray:
    """Piano roll ``(T, 128)`` float32: 1 (or the velocity) where a MIDI pitch sounds.

    Frame ``k`` covers the instant ``k / rate_hz``; a note sounds in frames
    ``round(onset * rate) .. round(offset * rate) - 1`` (at least one frame).
    """
    n_frames = _frames_for(notes, rate_hz, n_frames)
    roll = np.zeros((n_frames, 128), dtype=np.float32)
    for note, start, stop in _note_frames(notes, rate_hz, n_frames):
        if 0 <= note.pitch < 128:
            value = note.velocity if use_velocity else 1.0
            roll[start:stop, note.pitch] = np.maximum(roll[start:stop, note.pitch], value)
    return roll


def notes_to_chroma(notes: Sequence[NoteEvent], rate_hz: float, n_frames: int | None = None, *,
                    normalize: bool = True) -> np.ndarray:
    """Binary chroma ``(T, 12)`` of the sounding pitch classes (C = 0).

    With ``normalize`` each non-silent frame has max 1 (like librosa's
    ``norm=inf``); silent frames are all zero.
    """
    roll = notes_to_pianoroll(notes, rate_hz, n_frames)
    chroma = np.zeros((roll.shape[0], 12), dtype=np.float32)
    for pitch_class in range(12):
        chroma[:, pitch_class] = roll[:, pitch_class::12].max(axis=1)
    if not normalize:
        return chroma
    return chroma / np.maximum(chroma.max(axis=1, keepdims=True), 1e-12)


def _chroma_label(pitch: int, blank_id: int) -> int:
    """Pitch -> class id in 0..12: chroma classes skip ``blank_id``."""
    chroma = int(pitch) % 12
    return chroma + 1 if chroma >= blank_id else chroma


def chroma_label_sequence(notes: Sequence[NoteEvent], *, blank_id: int = 0) -> np.ndarray:
    """CTC target: one chroma label per onset, ``(L,)`` int32 in ``[0, 13)`` without ``blank_id``.

    Notes with the same onset (chords) contribute their highest pitch only,
    so a monophonic theme gives one label per note. With ``blank_id = 0``
    (optax's convention) pitch class ``c`` has label ``c + 1``.
    """
    by_onset: dict[float, int] = {}
    for note in notes:
        key = round(note.onset_s, 6)
        by_onset[key] = max(by_onset.get(key, -1), note.pitch)
    return np.asarray([_chroma_label(by_onset[k], blank_id) for k in sorted(by_onset)], dtype=np.int32)


def framewise_chroma_labels(notes: Sequence[NoteEvent], rate_hz: float, n_frames: int | None = None, *,
                            blank_id: int = 0) -> np.ndarray:
    """Strongly aligned targets ``(T,)`` int32: chroma label of the highest sounding note, blank if silent."""
    roll = notes_to_pianoroll(notes, rate_hz, n_frames)
    labels = np.full(roll.shape[0], blank_id, dtype=np.int32)
    sounding = roll.any(axis=1)
    highest = 127 - np.argmax(roll[:, ::-1], axis=1)
    labels[sounding] = [_chroma_label(p, blank_id) for p in highest[sounding]]
    return labels


def pad_label_sequences(sequences: Sequence[np.ndarray], max_length: int | None = None
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad label sequences for ``ctc_loss``: ``(labels (B, L) int32, paddings (B, L) float32)``.

    ``paddings[b, l] == 1.0`` marks padding (optax's convention).
    """
    length = max_length if max_length is not None else max((len(s) for s in sequences), default=0)
    labels = np.zeros((len(sequences), length), dtype=np.int32)
    paddings = np.ones((len(sequences), length), dtype=np.float32)
    for b, seq in enumerate(sequences):
        if len(seq) > length:
            raise ValueError(f"sequence {b} has {len(seq)} labels, more than max_length={length}")
        labels[b, : len(seq)] = seq
        paddings[b, : len(seq)] = 0.0
    return labels, paddings

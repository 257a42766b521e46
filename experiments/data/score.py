"""Scores (music21) -> :class:`Piece`: notes, beats, measures and theme in score time.

Score time is measured in quarter notes from the start of the first measure
(music21 offsets). Repeats are *not* expanded: a version plays the score as
written, once. Grace notes (zero duration) and unpitched notes are skipped;
tied notes are merged into one note.

MIDI files are read event by event (:func:`piece_from_midi`), not through
music21's notation, which quantizes onsets and splits notes at bar lines: a
performance keeps every note time to the tick. Tempo changes are folded into
the note positions: score time is seconds at the file's first tempo.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path

import numpy as np

from experiments.data.types import Piece, ScoreNote, Theme

__all__ = [
    "ScoreLoadError",
    "parse_score",
    "piece_from_midi",
    "piece_from_score",
    "piece_id_for",
    "resolve_corpus_paths",
]

# Part names that mark the principal (melody) voice, checked in this order.
_PRINCIPAL_NAMES = ("soprano", "violin i", "violin 1", "violino i", "flute", "melody", "voice")


class ScoreLoadError(ValueError):
    """A score could not be read; the message names the file."""


def _parse_from_source(path: Path):
    """music21's parse of a score file, with its pickle cache off both ways.

    By default music21 stores every parsed score as a pickle at a predictable
    path in the system temp folder and loads it on the next parse: on a shared
    machine anyone can plant a pickle there, and loading it runs their code.
    """
    import music21

    converter = music21.converter.Converter()
    converter.parseFileNoPickle(str(path))
    return converter.stream


def parse_score(source: str | Path):
    """Parse a score with music21: a file (MusicXML, MIDI, kern, ...) or a music21 corpus path.

    Never reads or writes music21's pickle cache (see :func:`_parse_from_source`).

    Raises:
      ScoreLoadError: naming ``source`` when music21 cannot read it.
    """
    import music21

    path = Path(source)
    try:
        if path.exists():
            if path.stat().st_size == 0:
                raise ScoreLoadError(f"score file is empty: {path}")
        else:
            path = music21.corpus.getWork(str(source))
            if isinstance(path, list):  # a work with several movements: the first, as corpus.parse does
                path = path[0]
        score = _parse_from_source(Path(path))
    except ScoreLoadError:
        raise
    except Exception as exc:  # music21 raises many unrelated types
        raise ScoreLoadError(f"cannot parse score {source}: {type(exc).__name__}: {exc}") from exc
    if not isinstance(score, music21.stream.Score):
        # An Opus (collection) or a bare Part: wrap what we can.
        if isinstance(score, music21.stream.Opus):
            score = score.scores[0]
        else:
            wrapped = music21.stream.Score()
            wrapped.insert(0, score)
            score = wrapped
    if not score.parts:
        raise ScoreLoadError(f"score has no parts: {source}")
    return score


def resolve_corpus_paths(patterns) -> list[str]:
    """Expand glob patterns over music21's bundled corpus.

    Args:
      patterns: corpus-relative paths or ``fnmatch`` globs such as
        ``"bach/bwv2*.mxl"`` (a pattern without extension also matches
        ``pattern + ".*"``), or paths of existing score files.

    Returns:
      Sorted, de-duplicated corpus-relative paths (e.g. ``"bach/bwv66.6.mxl"``),
      in the order of the patterns.
    """
    from music21 import corpus

    available = []
    for p in corpus.getPaths():
        text = str(p).replace("\\", "/")
        available.append(text.split("/corpus/", 1)[1] if "/corpus/" in text else text)
    available.sort()
    found: list[str] = []
    for pattern in patterns:
        if Path(pattern).is_file():  # a score file of the user's, outside the corpus
            found.append(str(pattern))
            continue
        hits = [a for a in available if fnmatch.fnmatch(a, pattern) or fnmatch.fnmatch(a, pattern + ".*")]
        found.extend(h for h in hits if h not in found)
    return found


def piece_id_for(source: str) -> str:
    """Stable identifier from a corpus path or file name: ``bach/bwv66.6.mxl`` -> ``bach-bwv66.6``."""
    stem = str(source)
    for ext in (".mxl", ".xml", ".musicxml", ".krn", ".mid", ".midi", ".abc"):
        if stem.lower().endswith(ext):
            stem = stem[: -len(ext)]
    return stem.strip("/").replace("/", "-").replace(" ", "_")


def _part_notes(part, index: int) -> list[ScoreNote]:
    notes = []
    for element in part.stripTies().flatten().notes:
        duration = float(element.quarterLength)
        if duration <= 0 or not getattr(element, "pitches", ()):
            continue
        onset = float(element.offset)
        for pitch in element.pitches:
            notes.append(ScoreNote(onset, onset + duration, int(pitch.midi), index))
    return notes


def _measures_and_beats(part) -> tuple[np.ndarray, np.ndarray, float]:
    """Measure starts, beat positions (quarter notes) and end of the first part."""
    import music21

    starts, beats = [], []
    time_signature = None
    end = 0.0
    for measure in part.getElementsByClass(music21.stream.Measure):
        if measure.timeSignature is not None:
            time_signature = measure.timeSignature
        beat_q = float(time_signature.beatDuration.quarterLength) if time_signature else 1.0
        start = float(measure.offset)
        length = float(measure.duration.quarterLength)
        # A pickup bar is padded on the left: its beats keep the full bar's grid.
        grid_origin = start - float(measure.paddingLeft or 0.0)
        k0 = int(np.ceil((start - grid_origin) / beat_q - 1e-9))
        position = grid_origin + k0 * beat_q
        while position < start + length - 1e-9:
            beats.append(position)
            position += beat_q
        starts.append(start)
        end = max(end, start + length)
    return np.asarray(starts, dtype=np.float64), np.asarray(beats, dtype=np.float64), end


def _principal_part(part_names: list[str], notes: list[ScoreNote]) -> int:
    lowered = [name.lower().strip() for name in part_names]
    for wanted in _PRINCIPAL_NAMES:
        for index, name in enumerate(lowered):
            if name == wanted or name.startswith(wanted + " ") or name == wanted.replace(" ", ""):
                if any(n.part == index for n in notes):
                    return index
    means = [np.mean([n.pitch for n in notes if n.part == i]) if any(n.part == i for n in notes)
             else -np.inf for i in range(len(part_names))]
    return int(np.argmax(means))


def _theme(notes: list[ScoreNote], measures_q: np.ndarray, end_q: float, part: int,
           n_measures: int) -> Theme:
    own = [n for n in notes if n.part == part]
    start = min(n.onset_q for n in own)
    first_measure = int(np.searchsorted(measures_q, start + 1e-9, side="right") - 1)
    last = first_measure + n_measures
    stop = float(measures_q[last]) if last < len(measures_q) else end_q
    theme_notes = tuple(ScoreNote(n.onset_q, min(n.offset_q, stop), n.pitch, n.part)
                        for n in own if start <= n.onset_q < stop)
    return Theme(part=part, start_q=float(start), end_q=stop, notes=theme_notes)


def _initial_qpm(score) -> float | None:
    try:
        marks = score.metronomeMarkBoundaries()
        bpm = marks[0][2].getQuarterBPM() if marks else None
    except Exception:  # malformed tempo marks: fall back to the default tempo
        return None
    return float(bpm) if bpm and bpm > 0 else None


def piece_from_score(score, *, source: str, piece_id: str | None = None, theme_measures: int = 4,
                     max_measures: int | None = None, default_qpm: float = 90.0) -> Piece:
    """Extract a :class:`Piece` from a music21 score.

    Args:
      score: a ``music21.stream.Score``.
      source: where it came from (kept for provenance and error messages).
      piece_id: identifier (default: :func:`piece_id_for` of ``source``).
      theme_measures: length of the theme in measures (see :class:`Theme`).
      max_measures: keep only the first measures (``None``: whole score).
      default_qpm: tempo in quarter notes per minute when the score has no
        metronome mark.

    Raises:
      ScoreLoadError: if the score has no pitched notes.
    """
    part_names = [str(p.partName or f"part {i}") for i, p in enumerate(score.parts)]
    notes = [n for i, part in enumerate(score.parts) for n in _part_notes(part, i)]
    if not notes:
        raise ScoreLoadError(f"score has no pitched notes: {source}")
    measures_q, beats_q, end_q = _measures_and_beats(score.parts[0])
    if len(measures_q) == 0:  # e.g. MIDI without bar lines: one measure per 4 quarters
        end_q = max(n.offset_q for n in notes)
        measures_q = np.arange(0.0, end_q, 4.0)
        beats_q = np.arange(0.0, end_q, 1.0)
    end_q = max(end_q, max(n.offset_q for n in notes))
    if max_measures is not None and max_measures < len(measures_q):
        cut = float(measures_q[max_measures])
        notes = [ScoreNote(n.onset_q, min(n.offset_q, cut), n.pitch, n.part) for n in notes if n.onset_q < cut]
        measures_q, beats_q, end_q = measures_q[:max_measures], beats_q[beats_q < cut - 1e-9], cut
    notes.sort(key=lambda n: (n.onset_q, n.part, n.pitch))
    qpm = _initial_qpm(score) or float(default_qpm)
    metadata = score.metadata
    principal = _principal_part(part_names, notes)
    return Piece(
        piece_id=piece_id or piece_id_for(source),
        source=str(source),
        title=str((metadata.title or metadata.movementName or "") if metadata else ""),
        composer=str((metadata.composer or "") if metadata else ""),
        part_names=tuple(part_names),
        qpm=qpm,
        notes=tuple(notes),
        beats_q=beats_q,
        measures_q=measures_q,
        end_q=float(end_q),
        theme=_theme(notes, measures_q, float(end_q), principal, theme_measures),
    )


_DEFAULT_US_PER_QUARTER = 500_000  # MIDI's default tempo: 120 quarters per minute
_DRUM_CHANNEL = 10


def _midi_events(path: Path):
    """Per track: its name and absolute-tick events ``(tick, event)`` of music21's low-level reader."""
    from music21 import midi

    midi_file = midi.MidiFile()
    try:
        midi_file.open(str(path))
        midi_file.read()
    finally:
        midi_file.close()
    tracks = []
    for track in midi_file.tracks:
        tick, events, name = 0, [], ""
        for event in track.events:
            if isinstance(event, midi.DeltaTime):
                tick += event.time
            else:
                events.append((tick, event))
                if event.type == midi.MetaEvents.SEQUENCE_TRACK_NAME and not name:
                    name = bytes(event.data).decode("latin-1").strip()
        tracks.append((name, events))
    return midi_file.ticksPerQuarterNote, tracks


def _tick_to_seconds(tempo_changes: list[tuple[int, int]], ticks_per_quarter: int):
    """``seconds(ticks)`` through the tempo map ``[(tick, microseconds per quarter), ...]``."""
    changes = sorted(tempo_changes) or [(0, _DEFAULT_US_PER_QUARTER)]
    if changes[0][0] > 0:
        changes.insert(0, (0, _DEFAULT_US_PER_QUARTER))
    ticks = np.array([t for t, _ in changes], np.float64)
    rates = np.array([us for _, us in changes], np.float64) / 1e6 / ticks_per_quarter  # seconds per tick
    starts = np.concatenate([[0.0], np.cumsum(np.diff(ticks) * rates[:-1])])

    def seconds(tick) -> np.ndarray:
        tick = np.asarray(tick, np.float64)
        k = np.searchsorted(ticks, tick, side="right") - 1
        return starts[k] + (tick - ticks[k]) * rates[k]

    return seconds, changes[0][1]


def _bar_grid(signatures: list[tuple[int, int, int]], ticks_per_quarter: int, end_tick: int):
    """Measure starts and beats in ticks from ``[(tick, numerator, denominator), ...]`` (4/4 if none)."""
    signatures = sorted(signatures) or [(0, 4, 4)]
    if signatures[0][0] > 0:
        signatures.insert(0, (0, 4, 4))
    measures, beats = [], []
    for k, (tick, numerator, denominator) in enumerate(signatures):
        stop = signatures[k + 1][0] if k + 1 < len(signatures) else max(end_tick, tick + 1)
        beat = ticks_per_quarter * 4 / denominator
        measures += list(np.arange(tick, stop, numerator * beat))
        beats += list(np.arange(tick, stop, beat))
    return np.asarray(measures), np.asarray(beats)


def piece_from_midi(path: str | Path, *, piece_id: str | None = None, theme_measures: int = 4) -> Piece:
    """A MIDI file as a :class:`Piece` with its notes at their exact times (see the module docstring).

    One part per track with notes (drums on channel 10 skipped); a note lasts from its note-on to the
    next note-off (or note-on with velocity 0) of its channel and pitch.

    Raises:
      ScoreLoadError: the file cannot be read or holds no pitched note.
    """
    from music21 import midi

    path = Path(path)
    try:
        ticks_per_quarter, tracks = _midi_events(path)
    except Exception as exc:  # music21 raises many unrelated types for damaged files
        raise ScoreLoadError(f"cannot parse score {path}: {type(exc).__name__}: {exc}") from exc
    tempo, signatures, raw, names = [], [], [], []
    for name, events in tracks:
        sounding: dict[tuple[int, int], list[int]] = {}
        part = []
        for tick, event in events:
            if event.type == midi.MetaEvents.SET_TEMPO:
                tempo.append((tick, int.from_bytes(bytes(event.data), "big")))
            elif event.type == midi.MetaEvents.TIME_SIGNATURE:
                data = bytes(event.data)
                signatures.append((tick, data[0], 2 ** data[1]))
            elif event.type in (midi.ChannelVoiceMessages.NOTE_ON, midi.ChannelVoiceMessages.NOTE_OFF):
                if event.channel == _DRUM_CHANNEL:
                    continue
                key = (event.channel, event.pitch)
                if event.type == midi.ChannelVoiceMessages.NOTE_ON and event.velocity > 0:
                    sounding.setdefault(key, []).append(tick)
                elif sounding.get(key):
                    onset = sounding[key].pop(0)
                    if tick > onset:
                        part.append((onset, tick, event.pitch))
        if part:
            raw.append(part)
            names.append(name or f"track {len(names)}")
    if not raw:
        raise ScoreLoadError(f"score has no pitched notes: {path}")
    seconds, first_us = _tick_to_seconds(tempo, ticks_per_quarter)
    qpm = 60e6 / first_us
    to_q = lambda ticks: seconds(ticks) * qpm / 60.0  # noqa: E731  (seconds at the first tempo, in quarters)
    notes = sorted((ScoreNote(float(to_q(on)), float(to_q(off)), int(pitch), i)
                    for i, part in enumerate(raw) for on, off, pitch in part),
                   key=lambda n: (n.onset_q, n.part, n.pitch))
    end_tick = max(off for part in raw for _, off, _ in part)
    measures, beats = _bar_grid(signatures, ticks_per_quarter, end_tick)
    measures_q, beats_q, end_q = to_q(measures), to_q(beats), float(to_q(end_tick))
    principal = _principal_part(names, notes)
    return Piece(piece_id=piece_id or piece_id_for(path.name), source=str(path), title=path.stem, composer="",
                 part_names=tuple(names), qpm=float(qpm), notes=tuple(notes), beats_q=beats_q,
                 measures_q=measures_q, end_q=end_q,
                 theme=_theme(notes, measures_q, end_q, principal, theme_measures))

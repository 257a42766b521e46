"""Loaders for the user's own data: folders of recordings, annotation CSVs, scores.

Nothing here downloads anything. Every error names the offending file. The
batch loaders (``load_audio_folder``, ``load_score_folder``) report a bad file
with a warning and go on with the rest (``on_error="skip"``), or stop at the
first one (``on_error="raise"``).

Annotation CSV format (header required, extra columns are kept as strings)::

    file,start,end,label
    bach_take1.wav,12.5,31.0,theme
"""

from __future__ import annotations

import csv
import dataclasses
import struct
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

from experiments.data.score import ScoreLoadError, parse_score, piece_from_midi, piece_from_score
from experiments.data.types import Piece

__all__ = [
    "AUDIO_EXTENSIONS",
    "Annotation",
    "AudioItem",
    "AudioLoadError",
    "SCORE_EXTENSIONS",
    "ScoreLoadError",
    "load_annotations",
    "load_audio",
    "load_audio_folder",
    "load_score",
    "load_score_folder",
]

AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".aiff", ".aif")
SCORE_EXTENSIONS = (".mid", ".midi", ".xml", ".musicxml", ".mxl", ".krn")


class AudioLoadError(ValueError):
    """An audio file is missing, unreadable, empty or silent; the message names it."""


@dataclasses.dataclass(frozen=True)
class Annotation:
    """A labelled segment of a recording (seconds)."""

    start_s: float
    end_s: float
    label: str
    extra: tuple[tuple[str, str], ...] = ()


@dataclasses.dataclass(frozen=True)
class AudioItem:
    """A loaded recording.

    Attributes:
      path: the file.
      audio: ``(num_samples,)`` float32 mono at ``sample_rate``.
      sample_rate: in Hz.
      annotations: segments from the annotation CSV for this file.
    """

    path: Path
    audio: np.ndarray
    sample_rate: int
    annotations: tuple[Annotation, ...] = ()

    @property
    def duration_s(self) -> float:
        return len(self.audio) / self.sample_rate


def load_audio(path: str | Path, *, sample_rate: int = 22050, silence_threshold: float = 1e-5) -> np.ndarray:
    """Read an audio file as mono float32 at ``sample_rate`` Hz (librosa.load, resampling if needed).

    Raises:
      AudioLoadError: the file is missing, cannot be decoded, has no samples,
        or its peak amplitude is below ``silence_threshold`` (silent).
    """
    import librosa

    path = Path(path)
    if not path.is_file():
        raise AudioLoadError(f"audio file not found: {path}")
    if path.stat().st_size == 0:
        raise AudioLoadError(f"audio file is empty (0 bytes): {path}")
    if problem := wav_truncation(path):
        raise AudioLoadError(f"audio file is truncated ({problem}): {path}")
    try:
        with warnings.catch_warnings():
            # librosa warns before falling back to audioread; the error below is clearer.
            warnings.simplefilter("ignore")
            audio, _ = librosa.load(str(path), sr=sample_rate, mono=True)
    except Exception as exc:
        raise AudioLoadError(f"cannot decode audio file {path}: {type(exc).__name__}: {exc}") from exc
    if audio.size == 0:
        raise AudioLoadError(f"audio file has no samples: {path}")
    if not np.all(np.isfinite(audio)):
        raise AudioLoadError(f"audio file contains NaN or inf samples: {path}")
    if float(np.max(np.abs(audio))) < silence_threshold:
        raise AudioLoadError(f"audio file is silent (peak < {silence_threshold}): {path}")
    return audio.astype(np.float32, copy=False)


def wav_truncation(path: Path) -> str | None:
    """For a WAV file whose data chunk is cut short, what is missing (None: complete, or not a WAV).

    Decoders read a truncated WAV without a word, returning the part that is there.
    """
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:] != b"WAVE":
            return None
        position = 12
        while position + 8 <= size:
            handle.seek(position)
            chunk_id, length = handle.read(4), struct.unpack("<I", handle.read(4))[0]
            if chunk_id == b"data":
                held = size - position - 8
                return f"the header announces {length} bytes of audio, the file holds {held}" if held < length else None
            position += 8 + length + (length & 1)
    return None


def load_annotations(csv_path: str | Path) -> dict[str, tuple[Annotation, ...]]:
    """Read an annotation CSV: file name -> its annotations, sorted by start.

    Raises:
      ValueError: naming the CSV (and line) for a missing column or a bad number.
    """
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise FileNotFoundError(f"annotation file not found: {csv_path}")
    result: dict[str, list[Annotation]] = {}
    with csv_path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {"file", "start", "end"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{csv_path}: missing column(s) {sorted(missing)} (need file,start,end[,label])")
        for line, row in enumerate(reader, start=2):
            try:
                start, end = float(row["start"]), float(row["end"])
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{csv_path}, line {line}: start/end must be numbers in seconds") from exc
            if end < start:
                raise ValueError(f"{csv_path}, line {line}: end {end} < start {start}")
            extra = tuple((k, str(v)) for k, v in row.items() if k not in {"file", "start", "end", "label"})
            result.setdefault(Path(row["file"]).name, []).append(
                Annotation(start, end, str(row.get("label") or ""), extra))
    return {k: tuple(sorted(v, key=lambda a: a.start_s)) for k, v in result.items()}


def _list_files(folder: str | Path, extensions: Sequence[str], what: str) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{what} folder not found: {folder}")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in extensions)
    if not files:
        raise FileNotFoundError(f"{what} folder has no {what} files ({', '.join(extensions)}): {folder}")
    return files


def _report(exc: Exception, on_error: str) -> None:
    if on_error == "raise":
        raise exc
    warnings.warn(f"skipped: {exc}", stacklevel=3)


def load_audio_folder(folder: str | Path, *, annotations_csv: str | Path | None = None,
                      sample_rate: int = 22050, on_error: str = "skip",
                      progress: bool = False) -> list[AudioItem]:
    """Load every audio file under ``folder`` (recursively, sorted by path).

    Args:
      folder: a folder of ``.wav``/``.flac``/``.mp3``/... files.
      annotations_csv: optional CSV (see the module docstring); rows are
        matched to files by file name.
      sample_rate: target rate in Hz.
      on_error: ``"skip"`` (warn naming the file, go on) or ``"raise"``.
      progress: show a tqdm bar.

    Raises:
      FileNotFoundError: the folder is missing or holds no audio file.
      AudioLoadError: a bad file when ``on_error="raise"``.
      ValueError: no file could be loaded.
    """
    from tqdm.auto import tqdm

    if on_error not in ("skip", "raise"):
        raise ValueError(f"on_error must be 'skip' or 'raise', got {on_error!r}")
    files = _list_files(folder, AUDIO_EXTENSIONS, "audio")
    annotations = load_annotations(annotations_csv) if annotations_csv is not None else {}
    items = []
    for path in tqdm(files, desc="load audio", disable=not progress):
        try:
            audio = load_audio(path, sample_rate=sample_rate)
        except AudioLoadError as exc:
            _report(exc, on_error)
            continue
        items.append(AudioItem(path, audio, sample_rate, annotations.get(path.name, ())))
    if not items:
        raise ValueError(f"no readable audio file in {folder}")
    return items


def load_score(path: str | Path, *, theme_measures: int = 4, default_qpm: float = 90.0,
               quantized_midi: bool = False) -> Piece:
    """Read a MIDI / MusicXML / kern score into a :class:`Piece` (score time).

    MIDI keeps its note times to the tick (a performance stays a performance,
    :func:`~experiments.data.score.piece_from_midi`); ``quantized_midi=True``
    reads it as notation instead (music21 quantizes onsets to the beat grid).

    Raises:
      ScoreLoadError: naming the file when it is missing or unparseable.
    """
    path = Path(path)
    if not path.is_file():
        raise ScoreLoadError(f"score file not found: {path}")
    if path.suffix.lower() in (".mid", ".midi") and not quantized_midi:
        if path.stat().st_size == 0:
            raise ScoreLoadError(f"score file is empty: {path}")
        return piece_from_midi(path, piece_id=path.stem, theme_measures=theme_measures)
    score = parse_score(path)
    return piece_from_score(score, source=str(path), piece_id=path.stem,
                            theme_measures=theme_measures, default_qpm=default_qpm)


def load_score_folder(folder: str | Path, *, on_error: str = "skip", **options) -> list[Piece]:
    """Load every score under ``folder``; bad files are reported and skipped (``on_error``)."""
    if on_error not in ("skip", "raise"):
        raise ValueError(f"on_error must be 'skip' or 'raise', got {on_error!r}")
    pieces = []
    for path in _list_files(folder, SCORE_EXTENSIONS, "score"):
        try:
            pieces.append(load_score(path, **options))
        except ScoreLoadError as exc:
            _report(exc, on_error)
    if not pieces:
        raise ValueError(f"no readable score in {folder}")
    return pieces

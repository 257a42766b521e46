"""Sheet-music snippets paired with the audio they sound as: the data of the sheet-audio experiments.

A corpus piece is engraved (:mod:`experiments.sheet.engrave`), its systems are found in the page
images and unrolled into one strip (:mod:`experiments.sheet.layout`); every score onset then has a
strip column, and in every recording an audio time (its :class:`~experiments.data.TimeMap`). A
training pair is the strip snippet centred on an onset and the spectrogram snippet centred on
the same onset in one recording.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import numpy as np

from experiments import features as feats
from experiments.sheet import engrave, layout

__all__ = ["SnippetConfig", "PieceSheet", "audio_snippets", "pair_examples", "piece_sheet",
           "sheet_audio_datasets", "sheet_snippets", "spectrogram", "corpus_sheets"]


@dataclasses.dataclass(frozen=True)
class SnippetConfig:
    """Snippet sizes (they must match the model's ``sheet_shape`` and ``audio_shape``).

    Attributes:
      height: strip height in pixels (every system is scaled to it).
      sheet_width: score snippet width in strip pixels (about 1.5 measures of the corpus's engravings).
      audio_frames: spectrogram snippet length in frames (4 s at 10 Hz).
      rate_hz: spectrogram frame rate.
    """

    height: int = 96
    sheet_width: int = 64
    audio_frames: int = 40
    rate_hz: float = 10.0

    @property
    def features(self) -> feats.FeatureConfig:
        return feats.FeatureConfig(kind="logfreq", rate_hz=self.rate_hz)

    @classmethod
    def of_model(cls, model_cfg: Mapping[str, Any], rate_hz: float = 10.0) -> "SnippetConfig":
        (height, width), (frames, _) = model_cfg.get("sheet_shape", (96, 64)), model_cfg.get("audio_shape", (40, 120))
        return cls(int(height), int(width), int(frames), rate_hz)


@dataclasses.dataclass(frozen=True)
class PieceSheet:
    """A piece's engraving unrolled, with the strip column of every score onset.

    Attributes:
      sheet: the engraving (pages and the truth position of every note head).
      strip: its systems, found in the page images and unrolled.
      onsets_q: ``(K,)`` distinct onsets of the piece in quarter notes.
      columns: ``(K,)`` strip column of each (median over its note heads), non-decreasing.
    """

    sheet: engrave.Sheet
    strip: layout.Strip
    onsets_q: np.ndarray
    columns: np.ndarray

    def column_of(self, quarters) -> np.ndarray:
        """Score time (quarter notes) -> strip column, linear between onsets."""
        return np.interp(quarters, self.onsets_q, self.columns)

    def quarters_of(self, columns) -> np.ndarray:
        """Strip column -> score time, linear between onsets (the inverse of :meth:`column_of`)."""
        keep = np.concatenate([[True], np.diff(self.columns) > 0])
        return np.interp(columns, self.columns[keep], self.onsets_q[keep])


def onset_columns(sheet: engrave.Sheet, strip: layout.Strip, onsets_q: np.ndarray) -> np.ndarray:
    """Strip column of every onset: the median column of its note heads, then made non-decreasing.

    Raises:
      ValueError: when an onset has no note head on a found system.
    """
    columns = layout.page_to_strip(strip, sheet.notes[:, 2], sheet.notes[:, 3], sheet.notes[:, 4])
    result = np.empty(len(onsets_q))
    for k, q in enumerate(onsets_q):
        at = (np.abs(sheet.notes[:, 0] - q) < 1e-3) & ~np.isnan(columns)
        if not at.any():
            raise ValueError(f"no engraved note head on a found system at onset {q} quarters")
        result[k] = np.median(columns[at])
    return np.maximum.accumulate(result)


def piece_sheet(piece, root, max_measures: int | None, height: int = 96) -> PieceSheet:
    """Engrave (or read from the cache under ``root``) and unroll one corpus piece."""
    sheet = engrave.engrave_piece(piece, root, max_measures)
    strip = layout.unroll(sheet.pages, layout.find_systems(sheet.pages, deskew=False), height)
    onsets = np.unique([note.onset_q for note in piece.notes])
    return PieceSheet(sheet, strip, onsets, onset_columns(sheet, strip, onsets))


def _engrave_job(job: tuple) -> PieceSheet | str:
    """A worker's job: the :class:`PieceSheet` of ``(piece, root, max_measures, height)``, or why not."""
    try:
        return piece_sheet(*job)
    except ValueError as error:
        return str(error)


def corpus_sheets(corpus, piece_ids, height: int = 96, *, progress: bool = True
                  ) -> tuple[dict[str, PieceSheet], dict[str, str]]:
    """Engraved and unrolled pieces (cached, over the cores), and the pieces left out with the reason.

    A piece is left out when its engraving disagrees with the score time of its recordings (a few
    of music21's MusicXML exports read differently in Verovio: overfull measures, an implicit
    pickup) or a note head lies off every found system: truth that is not exact is no truth.
    """
    from experiments.workers import map_in_workers

    piece_ids = sorted(piece_ids)
    jobs = [(corpus.pieces[p], corpus.root, corpus.config.max_measures, height) for p in piece_ids]
    results = map_in_workers(_engrave_job, jobs, desc="engrave scores", progress=progress)
    sheets = {p: r for p, r in zip(piece_ids, results) if isinstance(r, PieceSheet)}
    return sheets, {p: r for p, r in zip(piece_ids, results) if isinstance(r, str)}


def _windows(values: np.ndarray, centres: np.ndarray, length: int, axis: int) -> np.ndarray:
    """Windows of ``length`` along ``axis`` centred on ``centres`` (zero outside), stacked first."""
    values = np.moveaxis(values, axis, 0)
    half = length // 2
    padded = np.concatenate([np.zeros((half, *values.shape[1:]), values.dtype), values,
                             np.zeros((length - half, *values.shape[1:]), values.dtype)])
    starts = np.clip(np.round(np.asarray(centres)).astype(int), 0, len(values))  # in padded coordinates
    return np.stack([np.moveaxis(padded[s:s + length], 0, axis) for s in starts])


def sheet_snippets(strip: layout.Strip, columns, width: int) -> np.ndarray:
    """``(K, H, width)`` float32 strip windows centred on ``columns`` (ink = 1, blank beyond the ends)."""
    return _windows(strip.image, columns, width, axis=1).astype(np.float32)


def spectrogram(audio_features: np.ndarray) -> np.ndarray:
    """Log-frequency spectrogram ``(T, F)`` scaled so that its 99th percentile is 1 (recording level
    differs by tens of dB between versions, the network should not have to learn that)."""
    return (audio_features / max(float(np.percentile(audio_features, 99)), 1e-6)).astype(np.float32)


def audio_snippets(spec: np.ndarray, frames, length: int) -> np.ndarray:
    """``(K, length, F)`` float32 spectrogram windows centred on ``frames`` (silence beyond the ends)."""
    return _windows(spec, frames, length, axis=0).astype(np.float32)


def pair_examples(version, spec: np.ndarray, piece_sheet: PieceSheet, config: SnippetConfig, label_base: int):
    """(sheet snippets, audio snippets, labels) at every onset of the piece sounding in ``version``;
    label = ``label_base`` + index of the onset, shared by every version of the piece."""
    seconds = version.time_map.to_seconds(piece_sheet.onsets_q)
    inside = (seconds >= 0) & (seconds * config.rate_hz < len(spec))
    sheets = sheet_snippets(piece_sheet.strip, piece_sheet.columns[inside], config.sheet_width)
    audio = audio_snippets(spec, seconds[inside] * config.rate_hz, config.audio_frames)
    return sheets, audio, label_base + np.flatnonzero(inside)


def _split_pairs(corpus, split: str, config: SnippetConfig) -> dict[str, np.ndarray]:
    part = corpus.subset(split)
    values = feats.corpus_features(part, config.features, progress=len(part) > 20)
    pieces = sorted(corpus.pieces)
    sheets, _ = corpus_sheets(corpus, part.pieces, config.height, progress=False)
    rows = [pair_examples(v, spectrogram(values[v.version_id]), sheets[v.piece_id], config,
                          10_000 * pieces.index(v.piece_id)) for v in part.versions if v.piece_id in sheets]
    sheet, audio, labels = (np.concatenate([row[i] for row in rows]) for i in range(3))
    return {"inputs": np.concatenate([sheet.reshape(len(sheet), -1), audio.reshape(len(audio), -1)], axis=1),
            "labels": labels.astype(np.int32)}


def sheet_audio_datasets(data_cfg: Mapping[str, Any], *, model_cfg: Mapping[str, Any]):
    """(train, validation) :class:`~experiments.training.datasets.ArrayDataset` of packed
    (score snippet, audio snippet) pairs (see ``models.SheetAudioEmbedder``) of the train and
    val pieces; validation pairs in a fixed random order, so every batch mixes pieces."""
    from experiments.config import from_config
    from experiments.data import CorpusConfig, build_corpus
    from experiments.training.datasets import ArrayDataset

    corpus = build_corpus(from_config(CorpusConfig, data_cfg), progress=False)
    config = SnippetConfig.of_model(model_cfg)
    train, val = (_split_pairs(corpus, split, config) for split in ("train", "val"))
    order = np.random.default_rng(0).permutation(len(val["labels"]))
    return ArrayDataset(train), ArrayDataset({key: value[order] for key, value in val.items()})

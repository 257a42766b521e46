"""Training examples cut from the embedded corpus (`data=tiny|small|full`).

Chroma tasks: windows of `WINDOW_FRAMES` frames (hop half a window) of every
version's features, with the three target forms of
`experiments.training.synthetic.chroma_examples` derived from the version's
exact note times (of the principal voice by default, see :func:`target_notes`):
strong frame chroma, the sequence of score events in the window (weak targets, no
timing) and its CTC labels. Shingles: CENS resampled to ``shingle_rate_hz`` (1 Hz
in the paper) and cut into unit-norm 20-frame shingles exactly as the retrieval
database cuts them (:func:`experiments.retrieval.shingles.recording_shingles`),
labelled by passage of the score (the same passage in other versions is a
positive), with the piece as group. Examples come from the pieces of the corpus's train split, validation
examples from its val split (:meth:`~experiments.data.corpus.Corpus.split_pieces`): the
test pieces, on which the report's tables are computed, are never read.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import numpy as np

from experiments import features as feats
from experiments.retrieval import shingles
from experiments.training.datasets import ArrayDataset

WINDOW_FRAMES = 64  # frames of a chroma training window (hop: half a window)
FEATURE_KIND = {"hcqt": "hcqt", "logfreq": "logfreq", "shingles": "cens"}


def _feature_config(config: feats.FeatureConfig, inputs: str) -> feats.FeatureConfig:
    """The corpus's feature settings with the kind the model reads (CENS for shingles)."""
    return dataclasses.replace(config, kind=FEATURE_KIND[inputs])


def _events_in(notes, start_s: float, stop_s: float) -> list[tuple[int, ...]]:
    """Pitches of each distinct onset in [start_s, stop_s), in time order."""
    by_onset: dict[float, list[int]] = {}
    for note in notes:
        if start_s <= note.onset_s < stop_s:
            by_onset.setdefault(round(note.onset_s, 6), []).append(int(note.pitch))
    return [tuple(sorted(by_onset[t])) for t in sorted(by_onset)]


def _window_example(values, notes, start: int, frames: int, rate_hz: float, max_events: int) -> dict:
    window = values[start:start + frames]
    valid = len(window)
    pad = [(0, frames - valid)] + [(0, 0)] * (window.ndim - 1)
    strong = feats.notes_to_chroma(notes, rate_hz, len(values), normalize=False)[start:start + frames]
    strong_labels = feats.framewise_chroma_labels(notes, rate_hz, len(values))[start:start + frames]
    events = _events_in(notes, start / rate_hz, (start + valid) / rate_hz)[:max_events]
    weak = np.zeros((max_events, 12), np.float32)
    labels = np.zeros(max_events, np.int32)
    for i, pitches in enumerate(events):
        weak[i, [p % 12 for p in pitches]] = 1.0
        labels[i] = max(pitches) % 12 + 1
    count = max(len(events), 1)  # an empty window keeps one silent target row
    return {
        "inputs": np.pad(window, pad).astype(np.float32),
        "paddings": (np.arange(frames) >= valid).astype(np.float32),
        "strong_targets": np.pad(strong, [(0, frames - valid), (0, 0)]),
        "strong_labels": np.pad(strong_labels, (0, frames - valid)),
        "weak_targets": weak,
        "weak_paddings": (np.arange(max_events) >= count).astype(np.float32),
        "labels": labels,
        "label_paddings": (np.arange(max_events) >= len(events)).astype(np.float32),
    }


def _stack(examples: list[dict], shuffle_seed: int | None = None) -> ArrayDataset:
    """The examples as one dataset, in a fixed random order when ``shuffle_seed`` is given."""
    order = np.arange(len(examples))
    if shuffle_seed is not None:
        order = np.random.default_rng(shuffle_seed).permutation(len(examples))
    return ArrayDataset({key: np.stack([examples[i][key] for i in order]) for key in examples[0]})


def _split_features(corpus, split: str, config: feats.FeatureConfig):
    """(version, features) of the versions of one split's pieces (the others are not computed)."""
    part = corpus.subset(split)
    values = feats.corpus_features(part, config, progress=len(part) > 20)
    return [(version, values[version.version_id]) for version in part.versions]


def _shingle_examples(version, values: np.ndarray, rate_hz: float, shingle: tuple[float, int, float | None],
                      piece: int) -> list[dict]:
    """The shingles of one version (``shingle`` = (rate, frames, passage length in quarter notes)),
    with ``groups`` = ``piece`` and ``passages``: the passage of the score each shingle starts in
    (0 for all when the passage length is None: the whole piece is one passage)."""
    shingle_rate_hz, frames, passage_q = shingle
    vectors = shingles.recording_shingles(values, rate_hz, rate_hz=shingle_rate_hz, length=frames)
    passages = np.zeros(len(vectors), np.int64)
    if passage_q is not None:
        starts_q = version.time_map.to_quarters(np.arange(len(vectors)) / shingle_rate_hz)
        passages = np.floor(starts_q / passage_q).astype(np.int64)
    return [{"inputs": vector, "groups": np.int32(piece), "passages": passage}
            for vector, passage in zip(vectors, passages)]


def _label_passages(examples: list[dict]) -> list[dict]:
    """``labels``: one id per (piece, passage), in place of ``passages``."""
    keys = [(e["groups"], e.pop("passages")) for e in examples]
    ids = {key: i for i, key in enumerate(sorted(set(keys)))}
    for example, key in zip(examples, keys):
        example["labels"] = np.int32(ids[key])
    return examples


def _examples(version, values: np.ndarray, inputs: str, rate_hz: float, shingle: tuple[float, int, float | None],
              label: int, notes) -> list[dict]:
    """Training examples of one version: shingles (:func:`_shingle_examples`, piece ``label``), or
    chroma windows of ``notes``."""
    if inputs == "shingles":
        return _shingle_examples(version, values, rate_hz, shingle, label)
    frames = WINDOW_FRAMES
    return [_window_example(values, notes, start, frames, rate_hz, frames // 2)
            for start in range(0, max(len(values) - frames // 2, 1), frames // 2)]


TARGETS = ("melody", "all")


def target_notes(corpus, version, targets: str):
    """The notes a chroma network learns from: the principal voice (the part that holds the theme)
    for ``"melody"``, every note for ``"all"``."""
    if targets not in TARGETS:
        raise ValueError(f"targets must be one of {TARGETS}, got {targets!r}")
    if targets == "all":
        return version.notes
    part = corpus.pieces[version.piece_id].theme.part
    return tuple(note for note in version.notes if note.part == part)


def corpus_datasets(data_cfg: Mapping[str, Any], *, inputs: str, model_cfg: Mapping[str, Any],
                    targets: str = "melody", shingle_rate_hz: float = 1.0,
                    passage_q: float | None = None) -> tuple[ArrayDataset, ArrayDataset]:
    """(train, validation) example sets from the corpus that `data_cfg` describes (built/cached on demand).

    Chroma targets come from :func:`target_notes` (``targets``): theme retrieval matches a
    melody, so by default the networks learn the principal voice (Zalkow & Müller 2021 train on
    theme annotations); ``"all"`` learns every note. Shingles are cut from CENS at
    ``shingle_rate_hz`` (Zalkow & Müller 2020: 1 Hz; the report's short recordings need more) and
    labelled by passage: shingles that start in the same ``passage_q`` quarter notes of the score,
    in any version, share a label, and ``groups`` holds the piece, so that the triplet loss pushes
    only other pieces away (``passage_q=None``: one label per piece).
    The validation examples come in a fixed random order, so that every batch mixes pieces
    (a triplet needs a positive and a negative in its batch).
    """
    from experiments.config import from_config
    from experiments.data import CorpusConfig, build_corpus

    corpus = build_corpus(from_config(CorpusConfig, data_cfg), progress=False)
    feature_cfg = _feature_config(corpus.config.features, inputs)
    pieces = sorted(corpus.pieces)
    shingle = (shingle_rate_hz, int(model_cfg.get("shingle_frames", 20)), passage_q)
    train, val = ([example for version, v in _split_features(corpus, split, feature_cfg)
                   for example in _examples(version, v, inputs, feature_cfg.rate_hz, shingle,
                                            pieces.index(version.piece_id), target_notes(corpus, version, targets))]
                  for split in ("train", "val"))
    if inputs == "shingles":
        train, val = _label_passages(train), _label_passages(val)
    if not train or not val:
        raise ValueError(f"corpus {corpus.config.name!r} gives no training or validation examples; "
                         f"its train and val pieces need recordings longer than one window.")
    return _stack(train), _stack(val, shuffle_seed=0)

"""The embedded corpus: music21 scores rendered in several versions, cached on disk.

``build_corpus(config)`` parses the configured scores from music21's bundled
corpus, draws ``versions_per_piece`` performances of each
(:mod:`experiments.data.performance`), renders them with the project's
synthesizer and stores audio (float32 WAV) and ground truth (JSON) under
``{cache_dir}/{name}-{hash of the config}/``. The folder is complete when
``manifest.json`` exists (written last); a second call loads it without
rendering. Every file is written atomically, so an interrupted build resumes
where it stopped and never leaves a half-written file.

Layout::

    {root}/manifest.json            config, ids, sizes, build time
    {root}/pieces/{piece_id}.json   Piece (score time)
    {root}/versions/{version_id}.json, .wav   Version ground truth + audio
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import itertools
import time
import warnings
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np

from experiments.config import from_config
from experiments.data import cache
from experiments.data.performance import (PerformanceRanges, perform, render_version,
                                          sample_performance, version_seed)
from experiments.data.score import ScoreLoadError, parse_score, piece_from_score, resolve_corpus_paths
from experiments.data.types import (NoteEvent, Performance, Piece, ScoreNote, Theme, TimeMap,
                                    Version)
from experiments.features import FeatureConfig
from experiments.workers import map_in_workers

__all__ = [
    "SPLITS",
    "SplitConfig",
    "assign_splits",
    "corpus_config",
    "Corpus",
    "CorpusConfig",
    "build_corpus",
    "concatenate_pieces",
    "corpus_root",
    "damaged_files",
    "load_corpus",
    "make_version",
    "piece_from_dict",
    "theme_melody",
    "piece_to_dict",
    "version_from_dict",
    "version_to_dict",
]

# Bump when the renderer or the stored format changes: old caches are then ignored.
FORMAT_VERSION = 1

SPLITS = ("train", "val", "test")


@dataclasses.dataclass
class SplitConfig:
    """Which pieces train, validate and test (``conf/data/*.yaml`` key ``split``).

    Every version of a piece lies in its piece's split, so no test recording shares
    notes with anything a learned component saw. Fractions of the pieces; the rest is test.

    Attributes:
      train: fraction of the pieces whose versions fit networks, PCA and thresholds.
      val: fraction for model selection and early stopping.
      salt: changes the draw (the same salt always gives the same split).
    """

    train: float = 0.5
    val: float = 0.1
    salt: str = ""


def _piece_rank(piece_id: str, salt: str) -> str:
    return hashlib.sha256(f"{salt}/{piece_id}".encode()).hexdigest()


def assign_splits(piece_ids, config: SplitConfig) -> dict[str, str]:
    """piece id -> ``"train"``, ``"val"`` or ``"test"``: deterministic, by a hash of the id.

    The pieces are ordered by ``sha256(salt/piece_id)``; the first ``round(train * n)``
    train, the next ``round(val * n)`` validate, the rest test, with at least one piece
    in each split (a corpus needs 3 pieces). Independent of the order of ``piece_ids``.

    Raises:
      ValueError: fractions outside [0, 1] or summing past 1, or fewer than 3 pieces.
    """
    n = len(piece_ids)
    if not (0 < config.train and 0 < config.val and config.train + config.val < 1):
        raise ValueError(f"split fractions need 0 < train, 0 < val and train + val < 1 (the rest tests), "
                         f"got train={config.train}, val={config.val}")
    if n < 3:
        raise ValueError(f"a corpus needs at least 3 pieces for train / val / test splits, got {n}")
    n_train = min(max(1, round(config.train * n)), n - 2)
    n_val = min(max(1, round(config.val * n)), n - n_train - 1)
    ordered = sorted(piece_ids, key=lambda piece_id: _piece_rank(piece_id, config.salt))
    return {piece_id: SPLITS[(rank >= n_train) + (rank >= n_train + n_val)]
            for rank, piece_id in enumerate(ordered)}


def collection_of(piece: Piece) -> str:
    """The corpus folder of a piece (``bach/bwv66.6.mxl`` -> ``bach``): its composer or repertoire,
    more reliable than the score's composer field, which is empty or garbled in many files; the
    folder name for a score outside the corpus."""
    source = Path(piece.source)
    return source.parts[0] if len(source.parts) > 1 and not source.is_absolute() else source.parent.name


@dataclasses.dataclass
class CorpusConfig:
    """What to build (see ``conf/data/*.yaml``).

    Attributes:
      name: label of the corpus (prefix of its cache folder).
      pieces: music21 corpus paths or globs (e.g. ``"bach/bwv2*"``), or score files.
      max_pieces: keep the first ``max_pieces`` matches (``None``: all).
      distinct_themes: leave out a piece whose theme opens with the same melody (intervals of
        its first notes) as a piece kept before it: chorale tunes recur in several
        harmonizations, and a query would find the other piece's recordings, counted wrong.
      versions_per_piece: number of rendered versions of each piece.
      max_measures: truncate every score to its first measures (``None``: whole).
      theme_measures: theme length in measures (see :class:`~experiments.data.types.Theme`).
      sample_rate: audio sample rate in Hz.
      default_qpm: tempo (quarters per minute) of scores without a metronome mark.
      seed: base seed of all versions.
      performance: ranges of the performance parameters.
      split: which pieces train, validate and test (not part of the hash: the audio is the same).
      features: the feature that retrieval and training compute from this corpus
        (``conf/data/*.yaml`` key ``features``; not part of the hash).
      cache_dir: folder of the cache (not part of the hash).
    """

    name: str = "small"
    pieces: tuple[str, ...] = ("bach/bwv66.6", "bach/bwv1.6", "bach/bwv10.7", "bach/bwv26.6")
    max_pieces: int | None = None
    distinct_themes: bool = True
    versions_per_piece: int = 3
    max_measures: int | None = None
    theme_measures: int = 4
    sample_rate: int = 22050
    default_qpm: float = 90.0
    seed: int = 0
    performance: PerformanceRanges = dataclasses.field(default_factory=PerformanceRanges)
    split: SplitConfig = dataclasses.field(default_factory=SplitConfig)
    features: FeatureConfig = dataclasses.field(default_factory=FeatureConfig)
    cache_dir: str = ".cache/sdtw-retrieval"

    def cache_key(self) -> str:
        """Hash of everything that changes the content (not ``cache_dir``)."""
        payload = dataclasses.asdict(self)
        payload.pop("cache_dir")
        payload.pop("features")  # computed from the audio, cached apart
        payload.pop("split")     # assigns pieces, renders nothing
        payload["format"] = FORMAT_VERSION
        return cache.config_hash(payload)


@dataclasses.dataclass
class Corpus:
    """A built corpus: pieces (score time) and versions (audio + ground truth).

    Attributes:
      root: cache folder.
      config: the config it was built from.
      pieces: piece_id -> :class:`Piece`.
      versions: all versions, grouped by piece, in build order.
      build_seconds: wall time of the build that produced it.
      assigned_splits: piece id -> split, fixed for a subset (None: drawn from ``config.split``).
    """

    root: Path
    config: CorpusConfig
    pieces: dict[str, Piece]
    versions: list[Version]
    build_seconds: float = 0.0
    assigned_splits: dict[str, str] | None = None

    def __len__(self) -> int:
        return len(self.versions)

    def __iter__(self) -> Iterator[Version]:
        return iter(self.versions)

    def versions_of(self, piece_id: str) -> list[Version]:
        return [v for v in self.versions if v.piece_id == piece_id]

    def version_pairs(self) -> list[tuple[Version, Version]]:
        """Every pair of versions of the same piece, piece by piece, in corpus order."""
        return [pair for piece_id in self.pieces for pair in itertools.combinations(self.versions_of(piece_id), 2)]

    @property
    def splits(self) -> dict[str, str]:
        """piece id -> its split (``config.split``, see :func:`assign_splits`; a subset keeps the
        assignment of the corpus it was cut from)."""
        if self.assigned_splits is not None:
            return dict(self.assigned_splits)
        return assign_splits(list(self.pieces), self.config.split)

    def split_pieces(self, split: str) -> list[str]:
        """Ids of the pieces in ``split`` (``"train"``, ``"val"`` or ``"test"``), in corpus order."""
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; known: {SPLITS}")
        splits = self.splits
        return [piece_id for piece_id in self.pieces if splits[piece_id] == split]

    def subset(self, split: str, max_pieces: int | None = None, *, per_collection: int | None = None
               ) -> "Corpus":
        """The corpus restricted to the pieces of ``split`` (the first ``max_pieces`` of them).

        ``per_collection`` keeps the first that many pieces of every collection (:func:`collection_of`,
        in corpus order) before ``max_pieces`` applies: a sample of every repertoire rather than
        the first pieces, which are all one composer's. The subset shares the cache folder, so
        features computed on it are the corpus's.
        """
        kept = self.split_pieces(split)
        if per_collection is not None:
            taken, selected = collections.Counter(), []
            for piece_id in kept:
                collection = collection_of(self.pieces[piece_id])
                taken[collection] += 1
                if taken[collection] <= per_collection:
                    selected.append(piece_id)
            kept = selected
        kept = kept[:max_pieces]
        return dataclasses.replace(self, pieces={p: self.pieces[p] for p in kept},
                                   versions=[v for v in self.versions if v.piece_id in kept],
                                   assigned_splits={p: split for p in kept})

    def version(self, version_id: str) -> Version:
        for v in self.versions:
            if v.version_id == version_id:
                return v
        raise KeyError(version_id)

    @property
    def total_seconds(self) -> float:
        """Total audio duration in seconds."""
        return float(sum(v.duration_s for v in self.versions))

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.config.name,
            "pieces": len(self.pieces),
            "versions": len(self.versions),
            "minutes": round(self.total_seconds / 60.0, 2),
            "build_seconds": round(self.build_seconds, 1),
            "root": str(self.root),
        }


# ----------------------------------------------------------------------------- serialisation
def _notes_to_rows(notes) -> list[list[float]]:
    return [[n.onset_q, n.offset_q, n.pitch, n.part] for n in notes]


def _score_notes(rows) -> tuple[ScoreNote, ...]:
    return tuple(ScoreNote(float(a), float(b), int(p), int(k)) for a, b, p, k in rows)


def piece_to_dict(piece: Piece) -> dict[str, Any]:
    d = dataclasses.asdict(piece)
    d["notes"] = _notes_to_rows(piece.notes)
    d["theme"] = {"part": piece.theme.part, "start_q": piece.theme.start_q,
                  "end_q": piece.theme.end_q, "notes": _notes_to_rows(piece.theme.notes)}
    return d


def piece_from_dict(d: Mapping[str, Any]) -> Piece:
    t = d["theme"]
    return Piece(
        piece_id=d["piece_id"], source=d["source"], title=d["title"], composer=d["composer"],
        part_names=tuple(d["part_names"]), qpm=float(d["qpm"]), notes=_score_notes(d["notes"]),
        beats_q=np.asarray(d["beats_q"], dtype=np.float64),
        measures_q=np.asarray(d["measures_q"], dtype=np.float64), end_q=float(d["end_q"]),
        theme=Theme(int(t["part"]), float(t["start_q"]), float(t["end_q"]), _score_notes(t["notes"])),
    )


def version_to_dict(version: Version) -> dict[str, Any]:
    return {
        "version_id": version.version_id, "piece_id": version.piece_id, "index": version.index,
        "performance": dataclasses.asdict(version.performance), "sample_rate": version.sample_rate,
        "duration_s": version.duration_s, "time_map": version.time_map.to_dict(),
        "notes": [[n.onset_s, n.offset_s, n.pitch, n.part, n.velocity] for n in version.notes],
        "beats_s": version.beats_s, "measures_s": version.measures_s,
        "theme_start_s": version.theme_start_s, "theme_end_s": version.theme_end_s,
    }


def version_from_dict(d: Mapping[str, Any], audio_path: Path | None = None) -> Version:
    perf = dict(d["performance"])
    perf["instruments"] = tuple(perf["instruments"])
    return Version(
        version_id=d["version_id"], piece_id=d["piece_id"], index=int(d["index"]),
        performance=Performance(**perf), sample_rate=int(d["sample_rate"]),
        duration_s=float(d["duration_s"]), time_map=TimeMap.from_dict(d["time_map"]),
        notes=tuple(NoteEvent(float(a), float(b), int(p), int(k), float(v)) for a, b, p, k, v in d["notes"]),
        beats_s=np.asarray(d["beats_s"], dtype=np.float64),
        measures_s=np.asarray(d["measures_s"], dtype=np.float64),
        theme_start_s=float(d["theme_start_s"]), theme_end_s=float(d["theme_end_s"]),
        audio_path=audio_path,
    )


# ----------------------------------------------------------------------------- build / load
CONF_DATA = Path(__file__).resolve().parents[2] / "conf" / "data"


def corpus_config(name: str = "small", **overrides: Any) -> CorpusConfig:
    """The corpus config ``conf/data/{name}.yaml`` (Hydra defaults resolved), with overrides.

    Example: ``corpus_config("tiny", cache_dir="/tmp/cache")``.
    """
    from experiments.config import compose

    if not (CONF_DATA / f"{name}.yaml").exists():
        known = sorted(p.stem for p in CONF_DATA.glob("*.yaml") if p.stem != "synthetic")
        raise ValueError(f"unknown corpus config {name!r}; known: {known}")
    return dataclasses.replace(from_config(CorpusConfig, compose([f"+data={name}"]).data), **overrides)


def corpus_root(config: CorpusConfig) -> Path:
    """Cache folder of a config: ``{cache_dir}/{name}-{cache_key}``."""
    return Path(config.cache_dir).expanduser() / f"{config.name}-{config.cache_key()}"


def load_corpus(root: str | Path) -> Corpus:
    """Load a complete corpus folder (audio stays on disk until ``Version.load_audio``)."""
    root = Path(root)
    manifest_path = root / "manifest.json"
    if not manifest_path.exists():
        raise FileNotFoundError(f"no complete corpus at {root} (manifest.json missing)")
    manifest = cache.read_json(manifest_path)
    config = from_config(CorpusConfig, manifest["config"])
    pieces = {pid: piece_from_dict(cache.read_json(root / "pieces" / f"{pid}.json"))
              for pid in manifest["pieces"]}
    versions = [version_from_dict(cache.read_json(root / "versions" / f"{vid}.json"),
                                  root / "versions" / f"{vid}.wav") for vid in manifest["versions"]]
    return Corpus(root, config, pieces, versions, float(manifest.get("build_seconds", 0.0)))


def _load_or_parse_piece(root: Path, source: str, config: CorpusConfig) -> Piece:
    path = root / "pieces" / f"{_piece_id(source)}.json"
    if path.exists():
        return piece_from_dict(cache.read_json(path))
    piece = piece_from_score(parse_score(source), source=source, theme_measures=config.theme_measures,
                             max_measures=config.max_measures, default_qpm=config.default_qpm)
    cache.write_json(path, piece_to_dict(piece))
    return piece


def _piece_id(source: str) -> str:
    from experiments.data.score import piece_id_for

    return piece_id_for(source)


def concatenate_pieces(pieces: list[Piece], piece_id: str) -> Piece:
    """One long piece that plays ``pieces`` one after another (e.g. for 20-minute recordings).

    Score times of piece ``k`` are shifted by the summed lengths of the
    pieces before it; the tempo and the theme are those of the first piece.
    Parts are matched by index (the result has as many parts as the widest piece).
    """
    notes, beats, measures, offset = [], [], [], 0.0
    for piece in pieces:
        notes += [ScoreNote(n.onset_q + offset, n.offset_q + offset, n.pitch, n.part) for n in piece.notes]
        beats.append(piece.beats_q + offset)
        measures.append(piece.measures_q + offset)
        offset += piece.end_q
    widest = max(pieces, key=lambda p: len(p.part_names))
    first = pieces[0]
    return dataclasses.replace(
        first, piece_id=piece_id, source="+".join(p.source for p in pieces), title=piece_id,
        part_names=widest.part_names, notes=tuple(notes), beats_q=np.concatenate(beats),
        measures_q=np.concatenate(measures), end_q=offset)


def make_version(piece: Piece, config: CorpusConfig, index: int) -> Version:
    """Ground truth of version ``index`` of ``piece`` under ``config`` (no audio)."""
    seed = version_seed(config.seed, piece.piece_id, index)
    performance = sample_performance(config.performance, len(piece.part_names), seed)
    return perform(piece, performance, config.performance, sample_rate=config.sample_rate, index=index)


def build_corpus(config: CorpusConfig | Mapping[str, Any], *, progress: bool = True,
                 rebuild: bool = False) -> Corpus:
    """Build (or load from the cache) the corpus described by ``config``.

    Scores that music21 cannot parse are reported with a warning naming the
    file and skipped; the rest of the corpus is built.

    Args:
      config: a :class:`CorpusConfig` or a mapping (e.g. the Hydra ``data`` node).
      progress: show tqdm progress bars.
      rebuild: ignore a complete cache and render again.

    Returns:
      The :class:`Corpus`; ``build_seconds`` is the wall time of the build
      that rendered it (stored in the manifest, also when loaded from the cache).
    """
    from tqdm.auto import tqdm

    config = from_config(CorpusConfig, config)
    root = corpus_root(config)
    if (root / "manifest.json").exists() and not rebuild:
        damaged = damaged_files(root)
        if not damaged:
            # The manifest's config has the same content key; the caller's says how to split and
            # featurize it.
            return dataclasses.replace(load_corpus(root), config=config)
        warnings.warn(f"corpus cache {root}: rebuilding what is damaged: {', '.join(damaged.values())}",
                      stacklevel=2)
        for path in [*damaged, root / "manifest.json"]:
            path.unlink(missing_ok=True)
    started = time.perf_counter()
    sources = resolve_corpus_paths(config.pieces)
    if not sources:
        raise ValueError(f"no music21 corpus file matches {list(config.pieces)}")
    pieces: dict[str, Piece] = {}
    melodies: dict[tuple[int, ...], str] = {}
    for source in tqdm(sources, desc="parse scores", disable=not progress):
        if config.max_pieces is not None and len(pieces) >= config.max_pieces:
            break
        try:
            piece = _load_or_parse_piece(root, source, config)
        except ScoreLoadError as exc:
            warnings.warn(f"skipping {source}: {exc}", stacklevel=2)
            continue
        melody = theme_melody(piece)
        if config.distinct_themes and melody in melodies:
            continue  # the same tune as a piece already kept (see CorpusConfig.distinct_themes)
        melodies[melody] = piece.piece_id
        pieces[piece.piece_id] = piece
    if not pieces:
        raise ValueError(f"none of the scores {sources} could be parsed")
    jobs = [(root, piece, config, k, rebuild) for piece in pieces.values() for k in range(config.versions_per_piece)]
    # Renders spread over the cores; versions already on disk are only read, here.
    pending = [i for i, (_, piece, _, k, _) in enumerate(jobs)
               if rebuild or not _is_rendered(root, f"{piece.piece_id}__v{k}")]
    rendered = dict(zip(pending, map_in_workers(_render_job, [jobs[i] for i in pending], desc="render versions",
                                                progress=progress)))
    versions = [rendered[i] if i in rendered else _render_job(job) for i, job in enumerate(jobs)]
    build_seconds = time.perf_counter() - started
    corpus = Corpus(root, config, pieces, versions, build_seconds)
    cache.write_json(root / "manifest.json", {
        "format": FORMAT_VERSION, "config": dataclasses.asdict(config),
        "pieces": list(pieces), "versions": [v.version_id for v in versions],
        "wav_bytes": {v.version_id: v.audio_path.stat().st_size for v in versions},
        "build_seconds": build_seconds, "summary": corpus.summary(),
    })
    return corpus


def theme_melody(piece: Piece, notes: int = 8) -> tuple[int, ...]:
    """Intervals between the first ``notes`` theme notes: the same tune in any key gives the same tuple."""
    pitches = [n.pitch for n in sorted(piece.theme.notes, key=lambda n: (n.onset_q, -n.pitch))][:notes]
    return tuple(int(b - a) for a, b in zip(pitches, pitches[1:]))


def damaged_files(root: Path) -> dict[Path, str]:
    """Files of a complete corpus folder that are missing or damaged -> what is wrong.

    A version's audio and ground truth go together: if one is damaged, both
    are listed, so the build renders the version again. The WAV sizes are
    checked against those recorded in the manifest (a truncated file).
    """
    try:
        manifest = cache.read_json(root / "manifest.json")
    except (OSError, ValueError):
        return {root / "manifest.json": "manifest.json (unreadable)"}
    damaged = {}
    for piece_id in manifest["pieces"]:
        path = root / "pieces" / f"{piece_id}.json"
        if not path.exists():
            damaged[path] = f"{path.name} (missing)"
    sizes = manifest.get("wav_bytes", {})
    for version_id in manifest["versions"]:
        json_path, wav_path = (root / "versions" / f"{version_id}{suffix}" for suffix in (".json", ".wav"))
        if problem := _version_problem(json_path, wav_path, sizes.get(version_id)):
            damaged[json_path] = damaged[wav_path] = problem
    return damaged


def _version_problem(json_path: Path, wav_path: Path, wav_bytes: int | None) -> str | None:
    """What is wrong with one version's files (None: intact); ``wav_bytes`` None skips the size check."""
    for path in (json_path, wav_path):
        if not path.exists():
            return f"{path.name} (missing)"
    size = wav_path.stat().st_size
    if wav_bytes is not None and size != wav_bytes:
        return f"{wav_path.name} ({size} bytes, expected {wav_bytes})"
    return None


def _version_files(root: Path, version_id: str) -> tuple[Path, Path]:
    """(ground-truth JSON, audio WAV) of a version in the cache."""
    return root / "versions" / f"{version_id}.json", root / "versions" / f"{version_id}.wav"


def _is_rendered(root: Path, version_id: str) -> bool:
    return all(path.exists() for path in _version_files(root, version_id))


def _render_job(job: tuple) -> Version:
    """:func:`_render_or_load` of ``(root, piece, config, index, rebuild)`` (one argument: a worker's job)."""
    return _render_or_load(*job)


def _render_or_load(root: Path, piece: Piece, config: CorpusConfig, index: int, rebuild: bool) -> Version:
    version = make_version(piece, config, index)
    json_path, wav_path = _version_files(root, version.version_id)
    if rebuild or not _is_rendered(root, version.version_id):
        # Audio first, ground truth second: a JSON file implies its audio is complete.
        cache.write_wav(wav_path, render_version(version), version.sample_rate)
        cache.write_json(json_path, version_to_dict(version))
    return dataclasses.replace(version, audio_path=wav_path)

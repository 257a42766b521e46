"""Search a folder of your own recordings with an audio excerpt or a score.

    python -m experiments.search --database FOLDER --query FILE
                                 [--method auto|fingerprint|matching|shingles|theme] [--top 20] [--out ranked.csv]
    python -m experiments.search --database FOLDER --query theme.mid --method theme
                                 [--chroma standard|enhanced|dnn] [--checkpoint RUN_FOLDER]
    python -m experiments.search --database FOLDER --query snippet.png --method sheet [--checkpoint RUN_FOLDER]

Methods:
- ``auto`` (default): ``fingerprint`` for an audio clip of a recording in the
  folder; when no recording holds the clip (or the query is a score),
  ``matching``.
- ``fingerprint`` (audio identification; Wang 2003): which recording is this
  clip, and where in it? Landmark hashes of spectral peaks in an inverted
  index (:mod:`experiments.retrieval.fingerprint`); finds the very recording
  (noise, reverb, lossy coding, +-6% speed), not other performances. Only
  matches above ``--min-confidence`` are listed, so a clip of a recording not
  in the folder gives no row.
- ``matching`` (default; Müller, Kurth & Clausen 2005): the query's CENS
  features (10 Hz) in several tempo scalings slid along every recording's
  CENS (1 Hz); hits are the minima of the matching curves, so one recording
  can match several times.
- ``shingles`` (Grosche & Müller 2012): the query's first 20 s as a 240-dim
  shingle in several tempo scalings, nearest neighbours among all shingles of
  the database in an HNSW index; one row per recording, best first. A query
  shorter than a shingle is compared with every passage of its own length
  (exact search).
- ``theme`` (Zalkow & Müller 2021): a short monophonic theme (MIDI or
  MusicXML, or audio) found anywhere in polyphonic recordings: subsequence DTW
  on chroma at 10 Hz (each query frame counted once, so costs per frame
  compare across recordings) over 3 tempo scalings and the 3 transpositions
  that fit each recording's pitch-class profile best. ``--chroma``
  picks the recordings' chroma: ``standard`` (CQT), ``enhanced`` (the melody
  range, log-compressed, smoothed) or ``dnn`` (the chroma CNN trained by
  ``experiments.reproduce`` or ``experiments.train experiment=ctc_chroma``; or
  ``--checkpoint RUN_FOLDER``). The CSV lists every recording (its best
  match), best first.
- ``sheet`` (Dorfer et al. 2018): a snippet of sheet music (an image or a PDF: a
  cropped system, a page) found in the recordings: the snippet's systems and
  the recordings are embedded by the sheet-audio model (trained by
  ``experiments.reproduce`` or ``experiments.train experiment=sheet_audio``; or
  ``--checkpoint RUN_FOLDER``) and matched by subsequence DTW; one row per
  recording, best first (:mod:`experiments.sheet.search`).

The query may be audio (wav, flac, mp3, ...) or a score (MIDI, MusicXML),
whose chroma comes from its notes. Features and the HNSW index are cached
outside the music folder (which may be read-only): in ``--cache``, default
``$XDG_CACHE_HOME/sdtw-retrieval/search/<folder hash>`` (``~/.cache/...``).
The features of a file are recomputed only when the file changes, the index
when the set of files changes, and any cached file that fails its checksum is
computed again; the fingerprint index grows by the files added since the last
search. Unreadable or truncated files are skipped and listed. Prints the
ranking and writes it as CSV (rank, file, start_s, end_s, distance,
confidence; confidence only for fingerprint matches).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import functools
import hashlib
import json
import sys
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

from experiments import features
from experiments.data import cache
from experiments.data.loaders import AUDIO_EXTENSIONS, AudioLoadError, ScoreLoadError, load_audio, load_score
from experiments.retrieval import fingerprint as fingerprints
from experiments.retrieval import index as indexes
from experiments.retrieval import matching, shingles
from experiments.retrieval.tempo import scale_tempo, unit_rows
from experiments.sync import positive_number, score_events

SAMPLE_RATE = 22050
CENS_RATE_HZ = 10.0  # the query's rate; the database is matched at 1 Hz
SCORE_SUFFIXES = (".mid", ".midi", ".xml", ".musicxml", ".mxl")
METHODS = ("auto", "fingerprint", "matching", "shingles", "theme", "sheet")
CHROMA_KINDS = ("standard", "enhanced", "dnn")
THEME_RATE_HZ = 10.0
MIN_SHINGLE_S = 4.0  # shorter queries carry too little to tell pieces apart
SPEED_SEARCH = (0.94, 0.96, 0.98, 1.0, 1.02, 1.04, 1.06)  # landmarks survive about 1.5% of speed change


@dataclasses.dataclass
class SearchConfig:
    """Defaults of the command line (``conf/search/default.yaml``).

    Attributes:
      method: ``auto``, ``fingerprint``, ``matching``, ``shingles``, ``theme`` or ``sheet`` (see the module docstring).
      chroma: the recordings' chroma for ``theme``: ``standard``, ``enhanced`` or ``dnn`` (standard:
        it ranked better than enhanced on the default corpus's train and val pieces; dnn needs a
        trained network).
      top: number of hits listed.
      min_confidence: fingerprint matches below this confidence (-log10 chance of a false match) are dropped.
      speeds: playback speeds the fingerprint search tries (landmarks survive about 1.5% of speed change).
    """

    method: str = "auto"
    chroma: str = "standard"
    top: int = 20
    min_confidence: float = fingerprints.DEFAULT_MIN_CONFIDENCE
    speeds: tuple[float, ...] = SPEED_SEARCH


def default_config() -> SearchConfig:
    """``conf/search/default.yaml``, checked against :class:`SearchConfig`."""
    from experiments.config import compose, from_config

    return from_config(SearchConfig, compose(["+search=default"]).search)


class SearchError(Exception):
    """An expected problem with the user's input, reported without a traceback."""


def _file_key(path: Path) -> str:
    stat = path.stat()
    return hashlib.sha1(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:16]


def default_cache_dir(database: Path) -> Path:
    """The cache of one music folder, named by its absolute path."""
    return cache.user_cache_dir("search", hashlib.sha1(str(database.resolve()).encode()).hexdigest()[:16])


def audio_files(folder: Path, cache_dir: Path) -> list[Path]:
    """Every audio file under ``folder`` (not in the cache), sorted; refuses a folder without one."""
    if folder.exists() and not folder.is_dir():
        raise SearchError(f"--database {folder} is a file; give the folder that holds your recordings")
    if not folder.is_dir():
        raise SearchError(f"database folder {folder} does not exist")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and cache_dir not in p.parents)
    if not files:
        raise SearchError(f"database folder {folder} holds no audio file ({', '.join(AUDIO_EXTENSIONS)})")
    return files


def _cens(audio: np.ndarray) -> np.ndarray:
    return features.chroma_cens(audio, SAMPLE_RATE, rate_hz=CENS_RATE_HZ)


def database_features(folder: Path, cache_dir: Path, compute=_cens, kind: str | None = None
                      ) -> tuple[dict[str, np.ndarray], list[str]]:
    """``compute(audio)`` (default: CENS at 10 Hz, ``(T, 12)``) of every readable audio file under
    ``folder``, cached per file and ``kind`` (None: CENS).

    Returns:
      (features by path relative to ``folder``, messages about skipped files).
    """
    from tqdm.auto import tqdm

    files = audio_files(folder, cache_dir)
    found, skipped = {}, []
    for path in tqdm(files, desc=f"database features ({kind or 'CENS'})"):
        cached = cache_dir / "features" / (f"{_file_key(path)}.npy" if kind is None else f"{kind}/{_file_key(path)}.npy")
        if (frames := cache.load_array(cached)) is not None:
            found[str(path.relative_to(folder))] = frames
            continue
        try:
            audio = load_audio(path, sample_rate=SAMPLE_RATE)
        except AudioLoadError as error:
            skipped.append(str(error))
            continue
        frames = compute(audio)
        cache.save_array(cached, frames)
        found[str(path.relative_to(folder))] = frames
    if not found:
        raise SearchError(f"no readable audio file in {folder}:\n  " + "\n  ".join(skipped))
    return found, skipped


def _check_query_path(path: Path) -> None:
    if path.is_dir():
        raise SearchError(f"--query {path} is a folder; give one audio or score file")
    if not path.is_file():
        raise SearchError(f"query file {path} does not exist")


def query_notes(path: Path) -> list:
    """The notes of a score query in seconds at its notated tempo; refuses an empty score."""
    try:
        piece = load_score(path)
    except ScoreLoadError as error:
        raise SearchError(f"cannot use the query: {error}") from None
    notes = score_events(piece)
    if not notes:
        raise SearchError(f"the query score {path} has no notes")
    return notes


def query_audio(path: Path) -> np.ndarray:
    try:
        return load_audio(path, sample_rate=SAMPLE_RATE)
    except AudioLoadError as error:
        raise SearchError(f"cannot use the query: {error}") from error


def query_features(path: Path) -> np.ndarray:
    """CENS-like chroma of the query at 10 Hz, ``(T, 12)``: from audio, or from a score's notes."""
    _check_query_path(path)
    if path.suffix.lower() in SCORE_SUFFIXES:
        return unit_rows(features.notes_to_chroma(query_notes(path), CENS_RATE_HZ))
    return _cens(query_audio(path))


def search_matching(query: np.ndarray, database: dict[str, np.ndarray], top: int) -> list[matching.Hit]:
    coarse = {item: scale_tempo(frames, CENS_RATE_HZ, 1.0, 1.0) for item, frames in database.items()}
    longest = max(len(frames) for frames in coarse.values())
    if len(query) / CENS_RATE_HZ * 0.66 > longest:
        raise SearchError(
            f"the query ({len(query) / CENS_RATE_HZ:.0f} s) is longer than every database recording "
            f"(the longest is {longest:.0f} s): use a shorter excerpt"
        )
    curves = matching.match_database(query, CENS_RATE_HZ, coarse, 1.0)
    return matching.ranked_hits(curves, max_hits=top, min_gap_s=len(query) / CENS_RATE_HZ / 2)


def _shingle_index(database: dict[str, np.ndarray], cache_dir: Path):
    """The shingles of the database and their HNSW index, loaded from the cache when the files are the same."""
    try:
        db = shingles.build_shingle_database(database, CENS_RATE_HZ)
    except ValueError as error:  # every recording shorter than one shingle
        raise SearchError(f"{error}; use --method matching") from error
    # The files and their contents name the index: any change builds a new one.
    key = hashlib.sha1(json.dumps(db.item_ids).encode() + db.vectors.tobytes()).hexdigest()[:16]
    path = cache_dir / f"shingles-{key}.hnsw"
    if cache.is_intact(path):  # hnswlib trusts the file it loads: never hand it a damaged one
        return db, indexes.HNSWIndex.load(path, dim=db.vectors.shape[1])
    index = indexes.HNSWIndex().build(db.vectors)
    path.parent.mkdir(parents=True, exist_ok=True)
    index.save(path)
    cache.seal(path)
    return db, index


def _short_shingles(query: np.ndarray, database: dict[str, np.ndarray]):
    """A query shorter than a shingle: shingles of its own length over the database, searched exactly."""
    seconds = len(query) / CENS_RATE_HZ
    length = int(np.floor(seconds * min(shingles.TEMPO_SCALES)))  # frames at 1 Hz that every variant fills
    if seconds < MIN_SHINGLE_S or length < 2:
        raise SearchError(f"the query ({seconds:.1f} s) is too short for shingles (at least {MIN_SHINGLE_S:g} s); "
                          "use --method matching or theme")
    try:
        db = shingles.build_shingle_database(database, CENS_RATE_HZ, length=length)
    except ValueError as error:
        raise SearchError(f"{error}; use --method matching") from error
    return db, indexes.BruteForceIndex().build(db.vectors), shingles.query_shingles(query, CENS_RATE_HZ, 0.0,
                                                                                    length=length)


def search_shingles(query: np.ndarray, database: dict[str, np.ndarray], top: int, cache_dir: Path) -> list[matching.Hit]:
    db, index = _shingle_index(database, cache_dir)
    variants = shingles.query_shingles(query, CENS_RATE_HZ, 0.0, length=db.length)
    if not len(variants):
        db, index, variants = _short_shingles(query, database)
    distances, ids = index.search(variants, min(100, len(db.vectors)))
    best: dict[int, tuple[float, int]] = {}
    for distance, i in zip(distances.ravel(), ids.ravel()):
        owner = int(db.owner[i])
        if owner not in best or distance < best[owner][0]:
            best[owner] = (float(distance), int(db.start_frame[i]))
    ranked = sorted(best.items(), key=lambda item: item[1][0])[:top]
    return [
        matching.Hit(db.item_ids[owner], start / db.rate_hz, (start + db.length) / db.rate_hz, distance)
        for owner, (distance, start) in ranked
    ]


def theme_chroma(kind: str, checkpoint: Path | None = None):
    """(cache tag, ``audio -> (T, 12)`` chroma at 10 Hz) of ``--chroma kind``.

    ``dnn`` loads the chroma network of ``checkpoint`` (a run folder) or the newest one trained by
    the report or the train app; the tag names the run and its best checkpoint, so another network
    computes its own features.
    """
    from experiments.retrieval import dnn_chroma, theme

    if kind == "standard":
        return "standard", lambda audio: theme.standard_chroma(audio, SAMPLE_RATE, rate_hz=THEME_RATE_HZ)
    if kind == "enhanced":
        return "enhanced", lambda audio: theme.enhanced_chroma(audio, SAMPLE_RATE, rate_hz=THEME_RATE_HZ)
    if kind != "dnn":
        raise SearchError(f"unknown chroma {kind!r}: use one of {', '.join(CHROMA_KINDS)}")
    try:
        run = Path(checkpoint) if checkpoint is not None else dnn_chroma.find_run()
        extractor = dnn_chroma.load_extractor(run, THEME_RATE_HZ)
    except dnn_chroma.NoTrainedNetworkError as error:
        raise SearchError(str(error)) from None
    best = sorted((run / "checkpoints" / "best").iterdir())
    tag = hashlib.sha1(f"{run.resolve()}|{best[-1].name if best else ''}".encode()).hexdigest()[:12]
    return f"dnn-{tag}", lambda audio: extractor(audio, SAMPLE_RATE)


def theme_variants(query: Path, chroma) -> list[np.ndarray]:
    """The query in each tempo scaling of theme retrieval, ``(N_s, 12)`` at 10 Hz: a score's notes as
    binary chroma, or an audio query's chroma (``chroma(audio)``)."""
    from experiments.data.types import NoteEvent
    from experiments.retrieval.theme import THEME_TEMPO_SCALES

    _check_query_path(query)
    if query.suffix.lower() in SCORE_SUFFIXES:
        notes = query_notes(query)
        first = min(n.onset_s for n in notes)
        return [features.notes_to_chroma([NoteEvent((n.onset_s - first) * s, (n.offset_s - first) * s, n.pitch, n.part)
                                          for n in notes], THEME_RATE_HZ) for s in THEME_TEMPO_SCALES]
    frames = chroma(query_audio(query))
    return [scale_tempo(frames, THEME_RATE_HZ, THEME_RATE_HZ, s) for s in THEME_TEMPO_SCALES]


def search_theme(variants: Sequence[np.ndarray], database: dict[str, np.ndarray]) -> list[matching.Hit]:
    """Every recording's best match of the theme, best first (distance: normalized subsequence-DTW cost)."""
    from experiments.retrieval.theme import match_theme

    usable = [name for name in database if len(database[name]) >= 2]
    if not usable:
        raise SearchError("every database recording is shorter than 0.2 s")
    distance, start, end = match_theme(variants, [database[name] for name in usable])
    hits = [matching.Hit(name, start[i] / THEME_RATE_HZ, (end[i] + 1) / THEME_RATE_HZ, float(distance[i]))
            for i, name in enumerate(usable)]
    return sorted(hits, key=lambda hit: hit.distance)


def fingerprint_index(folder: Path, cache_dir: Path) -> tuple[fingerprints.FingerprintIndex, list[str]]:
    """The landmark index of ``folder``, brought up to date: files changed or gone are removed, new
    ones added as one segment (the others are not read again).

    Returns:
      (the index, messages about skipped files).
    """
    from tqdm.auto import tqdm

    files = {str(p.relative_to(folder)): p for p in audio_files(folder, cache_dir)}
    try:
        index = fingerprints.FingerprintIndex(cache_dir / "fingerprints")
    except fingerprints.FingerprintIndexError as error:
        print(f"fingerprint index rebuilt: {error}", file=sys.stderr)
        index = fingerprints.FingerprintIndex(cache_dir / "fingerprints", reset=True)
    keys = {name: _file_key(path) for name, path in files.items()}
    indexed = index.files()
    index.remove(name for name, key in indexed.items() if keys.get(name) != key)
    new, skipped = {}, []
    for name in tqdm([n for n in files if indexed.get(n) != keys[n]], desc="fingerprints"):
        try:
            audio = load_audio(files[name], sample_rate=index.config.sample_rate)
        except AudioLoadError as error:
            skipped.append(str(error))
            continue
        new[name] = (keys[name], fingerprints.landmarks(audio, index.config.sample_rate, index.config))
    index.add(new)
    if not len(index):
        raise SearchError(f"no readable audio file in {folder}:\n  " + "\n  ".join(skipped))
    return index, skipped


def fingerprint_query(query: Path) -> np.ndarray:
    """The audio clip ``query`` at the fingerprints' sample rate, ``(samples,)``; refuses a score."""
    if query.suffix.lower() in SCORE_SUFFIXES:
        raise SearchError("a score cannot be fingerprinted; use --method matching or shingles")
    if query.is_dir():
        raise SearchError(f"--query {query} is a folder; give one audio or score file")
    try:
        return load_audio(query, sample_rate=fingerprints.FingerprintConfig().sample_rate)
    except AudioLoadError as error:
        raise SearchError(f"cannot use the query: {error}") from error


def search_fingerprint(clip: np.ndarray, index: fingerprints.FingerprintIndex, top: int,
                       min_confidence: float, speeds: Sequence[float] = SPEED_SEARCH) -> list[matching.Hit]:
    """The recordings that hold ``clip`` (from :func:`fingerprint_query`), most confident first (may be empty)."""
    duration = len(clip) / index.config.sample_rate
    found = index.identify(clip, index.config.sample_rate, top=top, min_confidence=min_confidence, speeds=speeds)
    return [matching.Hit(m.name, m.offset_s, m.offset_s + duration * m.speed, 1.0 - m.fraction, m.confidence)
            for m in found]


def search_sheet_music(database: Path, query: Path, top: int, cache_dir: Path,
                       checkpoint: Path | None = None) -> list[matching.Hit]:
    """``--method sheet``: a sheet music image found in the recordings of ``database``."""
    from experiments.retrieval.dnn_chroma import NoTrainedNetworkError
    from experiments.sheet.data import spectrogram
    from experiments.sheet.engrave import load_page_images
    from experiments.sheet.evaluate import find_embedder
    from experiments.sheet.search import search_sheet

    try:
        pages = load_page_images([query])
        embedder = find_embedder(checkpoint, option="--checkpoint")
    except (NoTrainedNetworkError, FileNotFoundError, ValueError, ImportError) as error:
        raise SearchError(str(error)) from None

    config = embedder.config.features
    compute = functools.partial(features.audio_features, sr=SAMPLE_RATE, config=config)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        found, skipped = database_features(database, cache_dir, compute, f"logfreq-{config.rate_hz:g}")
    _report_skipped(skipped)
    try:
        return search_sheet(pages, {k: spectrogram(v) for k, v in found.items()}, embedder, top)
    except ValueError as error:
        raise SearchError(f"{query}: {error}") from None


def write_csv(hits: Sequence[matching.Hit], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["rank", "file", "start_s", "end_s", "distance", "confidence"])
        for rank, hit in enumerate(hits, 1):
            confidence = "" if hit.confidence is None else f"{hit.confidence:.1f}"
            writer.writerow([rank, hit.item_id, f"{hit.start_s:.2f}", f"{hit.end_s:.2f}", f"{hit.distance:.4f}",
                             confidence])


def run(database: Path, query: Path, *, method: str = "auto", top: int = 20, out: Path = Path("ranked.csv"),
        cache_dir: Path | None = None, min_confidence: float = fingerprints.DEFAULT_MIN_CONFIDENCE,
        speeds: Sequence[float] = SPEED_SEARCH, chroma: str = "standard",
        checkpoint: Path | None = None) -> list[matching.Hit]:
    """Search ``database`` with ``query``; write and return the ranked hits (see the module docstring).

    ``cache_dir`` holds the features and indexes (default: :func:`default_cache_dir`). For
    ``method="theme"`` every recording's best match is written and returned, best first.
    """
    if method not in METHODS:
        raise SearchError(f"unknown method {method!r}: use one of {', '.join(METHODS)}")
    cache_dir = default_cache_dir(database) if cache_dir is None else cache_dir
    if method == "sheet":
        hits = search_sheet_music(database, query, top, cache_dir, checkpoint)
        write_csv(hits, out)
        return hits
    if method == "theme":
        kind, compute = theme_chroma(chroma, checkpoint)  # a missing network is named before any work
        variants = theme_variants(query, compute)
        if not any(np.any(v) for v in variants):
            raise SearchError(f"the query {query} is silent or empty")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            found, skipped = database_features(database, cache_dir, compute, kind)
        _report_skipped(skipped)
        hits = search_theme(variants, found)
        write_csv(hits, out)
        return hits
    if method == "fingerprint" or (method == "auto" and query.suffix.lower() not in SCORE_SUFFIXES):
        clip = fingerprint_query(query)  # the query is checked before any work on the folder
        with cache.exclusive(cache_dir / "fingerprints.lock"):  # two searches at once update it in turn
            index, skipped = fingerprint_index(database, cache_dir)
            hits = search_fingerprint(clip, index, top, min_confidence, speeds)
        _report_skipped(skipped)
        if hits or method == "fingerprint":
            write_csv(hits, out)
            return hits
        print("no recording in the folder holds this clip: searching for the same music (audio matching)",
              file=sys.stderr)
    query_frames = query_features(query)
    if len(query_frames) == 0 or not np.any(query_frames):
        raise SearchError(f"the query {query} is silent or empty")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        found, skipped = database_features(database, cache_dir)
    _report_skipped(skipped)
    if method == "shingles":
        hits = search_shingles(query_frames, found, top, cache_dir)
    else:
        hits = search_matching(query_frames, found, top)
    write_csv(hits, out)
    return hits


def _report_skipped(messages: Sequence[str]) -> None:
    for message in messages:
        print(f"skipped: {message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    defaults = default_config()
    parser = argparse.ArgumentParser(prog="python -m experiments.search", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--database", type=Path, required=True, help="folder of audio files")
    parser.add_argument("--query", type=Path, required=True,
                        help="audio excerpt, score (MIDI/MusicXML), or sheet music image/PDF (--method sheet)")
    parser.add_argument("--method", choices=METHODS, default=defaults.method,
                        help="fingerprint: this very recording (audio identification); matching: the same music "
                             "anywhere in a recording; shingles: versions of a piece; auto: fingerprint, then matching")
    parser.add_argument("--chroma", choices=CHROMA_KINDS, default=defaults.chroma,
                        help="--method theme: the recordings' chroma (dnn: the trained chroma CNN)")
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="--chroma dnn / --method sheet: run folder of the network (default: the newest "
                             "trained by experiments.reproduce or experiments.train experiment=ctc_chroma / "
                             "sheet_audio)")
    parser.add_argument("--top", type=positive_number(int), default=defaults.top,
                        help="number of hits (printed; --method theme writes every recording to the CSV)")
    parser.add_argument("--out", type=Path, default=Path("ranked.csv"), help="ranked CSV to write")
    parser.add_argument("--min-confidence", type=positive_number(float), default=defaults.min_confidence,
                        help="fingerprint matches below this confidence (-log10 chance of a false match) are dropped")
    parser.add_argument("--cache", type=Path, default=None,
                        help="cache of features and index (default: $XDG_CACHE_HOME/sdtw-retrieval/search/<hash>)")
    args = parser.parse_args(argv)
    try:
        hits = run(args.database, args.query, method=args.method, top=args.top, out=args.out,
                   cache_dir=args.cache, min_confidence=args.min_confidence, speeds=defaults.speeds,
                   chroma=args.chroma, checkpoint=args.checkpoint)
    except SearchError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if not hits:
        print(f"no recording in {args.database} holds this clip (no fingerprint match with confidence >= "
              f"{args.min_confidence:g})")
    for rank, hit in enumerate(hits[:args.top], 1):
        confidence = "" if hit.confidence is None else f"  confidence {hit.confidence:.0f}"
        print(f"{rank:3d}  {hit.item_id}  {hit.start_s:8.2f} s - {hit.end_s:8.2f} s  "
              f"distance {hit.distance:.3f}{confidence}")
    print(f"ranking written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

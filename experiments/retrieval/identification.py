"""Robustness of audio identification: clips cut from the corpus, degraded, identified.

The corpus is split by piece and version (:func:`identification_split`):

- *database*: every version but the last of the pieces kept in the index;
- *other rendering*: the last version of those pieces (same notes, another
  instrument, tempo and room), which must NOT be identified as a database
  recording: audio identification finds this recording, not this piece;
- *outside*: every version of the pieces left out of the index.

Clips of each length start at random positions. A database clip is
identified when the most confident match is its recording at its position
(within :data:`POSITION_TOLERANCE_S`); a clip of the other two kinds is a
false positive when any match clears the threshold.
"""

from __future__ import annotations

import dataclasses
import io
import tempfile
import time
from typing import Callable, Mapping, Sequence

import numpy as np
import scipy.signal

from experiments.data.synth import add_noise, add_reverb
from experiments.retrieval import fingerprint as fp

__all__ = ["DEGRADATIONS", "SPEED_SEARCH", "ChromaprintSystem", "Clip", "IdentificationResult", "LandmarkSystem", "Outcome",
           "default_systems", "evaluate_identification", "identification_split"]

POSITION_TOLERANCE_S = 0.1
SPEED_SEARCH = (0.94, 0.96, 0.98, 1.0, 1.02, 1.04, 1.06)  # a 2% grid: landmarks survive about 1.5%


def _speed(factor: float) -> Callable:
    def change(clip: np.ndarray, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
        """Played ``factor`` times as fast: shorter and higher (tape or turntable speed)."""
        up, down = fp.rational(1.0 / factor)
        return scipy.signal.resample_poly(clip, up, down).astype(np.float32)

    change.factor = factor
    return change


def _mp3(clip: np.ndarray, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Encoded as MP3 at 40 kbit/s (22.05 kHz mono; libsndfile's LAME), decoded again (codec delay kept)."""
    import soundfile

    buffer = io.BytesIO()
    soundfile.write(buffer, clip, sample_rate, format="MP3", bitrate_mode="CONSTANT", compression_level=0.8)
    buffer.seek(0)
    decoded, _ = soundfile.read(buffer, dtype="float32")
    return decoded[: len(clip)]


def mp3_available() -> bool:
    import soundfile

    return "MP3" in soundfile.available_formats()


DEGRADATIONS: dict[str, Callable[[np.ndarray, int, np.random.Generator], np.ndarray]] = {
    "clean": lambda clip, sr, rng: clip,
    "noise 20 dB SNR": lambda clip, sr, rng: add_noise(clip, 20.0, rng),
    "noise 10 dB SNR": lambda clip, sr, rng: add_noise(clip, 10.0, rng),
    "noise 0 dB SNR": lambda clip, sr, rng: add_noise(clip, 0.0, rng),
    "reverb (RT60 1.2 s)": lambda clip, sr, rng: add_reverb(clip, 1.2, sr, rng),
    "MP3 40 kbit/s": _mp3,
    "speed +5%": _speed(1.05),
    "speed -5%": _speed(0.95),
}


@dataclasses.dataclass(frozen=True)
class Clip:
    """A query: ``duration_s`` of ``source`` (a version id) from ``start_s``; ``kind`` is
    ``"database"``, ``"other rendering"`` or ``"outside"``; ``part`` is ``"calibration"`` (sets
    the thresholds) or ``"test"`` (measured at them)."""

    source: str
    start_s: float
    duration_s: float
    kind: str
    part: str = "test"


def identification_split(corpus, outside_fraction: float = 0.25) -> dict[str, list]:
    """Versions by role: ``database``, ``other rendering`` and ``outside`` (see the module docstring).

    The last ``outside_fraction`` of the pieces (by id, at least one) stay out of the index; with one
    version per piece there is no other rendering.
    """
    pieces = sorted(corpus.pieces)
    if len(pieces) < 2:
        raise ValueError("identification needs at least 2 pieces: one in the index, one outside")
    outside = set(pieces[len(pieces) - max(1, round(outside_fraction * len(pieces))):])
    last = {p: max(v.index for v in corpus.versions_of(p)) for p in pieces}
    roles = {"database": [], "other rendering": [], "outside": []}
    for version in corpus.versions:
        if version.piece_id in outside:
            roles["outside"].append(version)
        elif version.index == last[version.piece_id] and last[version.piece_id] > 0:
            roles["other rendering"].append(version)
        else:
            roles["database"].append(version)
    return roles


def cut_clips(versions, kind: str, durations: Sequence[float], per_recording: int,
              rng: np.random.Generator, margin: float = 1.07) -> list[Clip]:
    """``per_recording`` clips of each duration at random starts, room left for a 6% slower read;
    every other clip is for calibration."""
    clips = []
    for version in versions:
        for duration in durations:
            room = version.duration_s - duration * margin
            if room > 0:
                clips += [Clip(version.version_id, float(s), float(duration), kind, ("calibration", "test")[i % 2])
                          for i, s in enumerate(rng.uniform(0.0, room, per_recording))]
    return clips


class LandmarkSystem:
    """This project's landmark fingerprints (:mod:`experiments.retrieval.fingerprint`)."""

    name = "landmarks (this project)"
    searches_speed = True

    def __init__(self, min_confidence: float = fp.DEFAULT_MIN_CONFIDENCE):
        self.threshold = min_confidence
        self._folder = tempfile.TemporaryDirectory()
        self.index = fp.FingerprintIndex(self._folder.name)

    def build(self, recordings: Mapping[str, np.ndarray], sample_rate: int) -> dict:
        start = time.perf_counter()
        self.index.add({name: ("", fp.landmarks(audio, sample_rate)) for name, audio in recordings.items()})
        return {"entries": self.index.n_entries, "bytes": self.index.n_bytes, "build_s": time.perf_counter() - start}

    def identify(self, clip: np.ndarray, sample_rate: int, speeds: Sequence[float]) -> list[tuple[str, float, float]]:
        """(recording, offset in seconds, confidence), most confident first."""
        matches = self.index.identify(clip, sample_rate, min_confidence=0.0, speeds=speeds)
        return [(m.name, m.offset_s, m.confidence) for m in matches]


class ChromaprintSystem:
    """Chromaprint's words slid along each recording; score = 1 - bit error rate."""

    searches_speed = False

    def __init__(self, max_bit_error_rate: float = 0.18):
        from experiments.retrieval import chromaprint

        self._chromaprint = chromaprint
        self.name = f"Chromaprint {chromaprint.version()} ({chromaprint.interface()})"
        self.threshold = 1.0 - max_bit_error_rate

    def build(self, recordings: Mapping[str, np.ndarray], sample_rate: int) -> dict:
        start = time.perf_counter()
        words = {name: self._chromaprint.raw_fingerprint(a, sample_rate) for name, a in recordings.items()}
        self.index = self._chromaprint.ChromaprintIndex(words)
        return {"entries": sum(map(len, words.values())), "bytes": 4 * sum(map(len, words.values())),
                "build_s": time.perf_counter() - start}

    def identify(self, clip: np.ndarray, sample_rate: int, speeds: Sequence[float]) -> list[tuple[str, float, float]]:
        words = self._chromaprint.raw_fingerprint(clip, sample_rate)
        return [(name, offset, 1.0 - ber) for name, offset, ber in self.index.best_offsets(words)]


def default_systems(min_confidence: float = fp.DEFAULT_MIN_CONFIDENCE) -> list:
    """Ours, and Chromaprint where ``fpcalc`` is installed."""
    from experiments.retrieval import chromaprint

    return [LandmarkSystem(min_confidence)] + ([ChromaprintSystem()] if chromaprint.available() else [])


@dataclasses.dataclass(frozen=True)
class Outcome:
    """One query answered by one system.

    Attributes:
      system, condition, duration_s, kind, part: who, which degradation, clip length, clip kind,
        calibration or test clip.
      search: ``"speed 1"`` or ``"speed search"`` (:data:`SPEED_SEARCH`).
      score: the best match's confidence (0 if none).
      right: the best match is the clip's recording at its position (database clips only).
      ms: time of the query (fingerprint + lookup).
    """

    system: str
    condition: str
    duration_s: float
    kind: str
    part: str
    search: str
    score: float
    right: bool
    ms: float


@dataclasses.dataclass
class IdentificationResult:
    """Outcome of :func:`evaluate_identification`.

    Attributes:
      outcomes: every (query, system) answer.
      thresholds: system -> its decision threshold (a match counts when its score reaches it):
        after :meth:`calibrate`, the lowest that no calibration clip outside the index reaches.
      index: system -> hours, files, pieces, entries, bytes and build seconds of its index.
    """

    outcomes: list[Outcome]
    thresholds: dict[str, float]
    index: dict[str, dict]

    @property
    def systems(self) -> list[str]:
        return list(self.thresholds)

    def calibrate(self) -> None:
        """Set each system's threshold just above the best score of any calibration clip whose
        recording is not in the index (no false positive on the calibration clips)."""
        for system in self.thresholds:
            scores = [o.score for o in self.select(system=system, part="calibration") if o.kind != "database"]
            if scores:
                self.thresholds[system] = float(np.nextafter(max(scores), np.inf))

    def select(self, **where) -> list[Outcome]:
        return [o for o in self.outcomes if all(getattr(o, k) == v for k, v in where.items())]

    def identified(self, system: str, threshold: float | None = None, **where) -> tuple[int, int]:
        """(identified, queries) among database clips matching ``where``."""
        threshold = self.thresholds[system] if threshold is None else threshold
        chosen = self.select(system=system, kind="database", **where)
        return sum(o.right and o.score >= threshold for o in chosen), len(chosen)

    def false_positives(self, system: str, threshold: float | None = None, **where) -> tuple[int, int]:
        """(confident matches, queries) among clips whose recording is not in the index."""
        threshold = self.thresholds[system] if threshold is None else threshold
        chosen = [o for o in self.select(system=system, **where) if o.kind != "database"]
        return sum(o.score >= threshold for o in chosen), len(chosen)

    def median_ms(self, system: str, **where) -> float:
        return float(np.median([o.ms for o in self.select(system=system, condition="clean", **where)]))


def _right(matches: list[tuple[str, float, float]], clip: Clip) -> bool:
    """The best match is the clip's recording at the clip's position."""
    return bool(matches) and matches[0][0] == clip.source and \
        abs(matches[0][1] - clip.start_s) <= POSITION_TOLERANCE_S


def evaluate_identification(corpus, *, durations: Sequence[float] = (2.0, 5.0, 10.0), per_recording: int = 6,
                            degradations: Mapping[str, Callable] | None = None, systems: Sequence | None = None,
                            seed: int = 0, progress: bool = False) -> IdentificationResult:
    """Index the database versions in every system, then identify clean and degraded clips
    (see the module docstring). ``systems`` default: :func:`default_systems`."""
    from tqdm.auto import tqdm

    if degradations is None:
        degradations = {k: v for k, v in DEGRADATIONS.items() if k != "MP3 40 kbit/s" or mp3_available()}
    systems = default_systems() if systems is None else list(systems)
    rng = np.random.default_rng(seed)
    roles = identification_split(corpus)
    audio = {v.version_id: v.load_audio() for v in corpus.versions}
    sample_rate = corpus.config.sample_rate
    members = cut_clips(roles["database"], "database", durations, per_recording, rng)
    others = [c for kind in ("other rendering", "outside") for c in cut_clips(roles[kind], kind, durations,
                                                                                 per_recording, rng)]
    # Every system hears the very same degraded clips.
    jobs = [(name, d, (1.0,), "speed 1") for name, d in degradations.items()]
    jobs += [(name, d, SPEED_SEARCH, "speed search") for name, d in degradations.items() if hasattr(d, "factor")]
    queries = [(job, clip) for job in jobs for clip in members]
    queries += [(("clean", DEGRADATIONS["clean"], speeds, label), clip)
                for speeds, label in (((1.0,), "speed 1"), (SPEED_SEARCH, "speed search")) for clip in others]

    result = IdentificationResult([], {}, {})
    indexed = {"hours": sum(v.duration_s for v in roles["database"]) / 3600, "files": len(roles["database"]),
               "pieces": len({v.piece_id for v in roles["database"]})}
    for system in systems:
        facts = system.build({v.version_id: audio[v.version_id] for v in roles["database"]}, sample_rate)
        result.index[system.name] = {**indexed, **facts}
        result.thresholds[system.name] = system.threshold
    for (name, degrade, speeds, search), clip in tqdm(queries, desc="identification", disable=not progress):
        first = round(clip.start_s * sample_rate)
        samples = audio[clip.source][first: first + round(clip.duration_s * getattr(degrade, "factor", 1.0)
                                                           * sample_rate)]
        signal = degrade(samples, sample_rate, rng)
        for system in systems:
            if search == "speed search" and not system.searches_speed:
                continue
            begin = time.perf_counter()
            matches = system.identify(signal, sample_rate, speeds)
            elapsed_ms = (time.perf_counter() - begin) * 1000
            result.outcomes.append(Outcome(system.name, name, clip.duration_s, clip.kind, clip.part, search,
                                           matches[0][2] if matches else 0.0, _right(matches, clip), elapsed_ms))
    return result

"""Audio identification with landmark fingerprints (Wang, ISMIR 2003; Müller, FMP ch. 7).

Which recording is this clip, and where in it? A recording's fingerprint is a
constellation of spectral peaks; pairs of nearby peaks (anchor, target) are
hashed to 32-bit keys (anchor frequency, frequency step, time step) and
stored with the anchor's time. A clip is identified by looking its hashes up
in an inverted index and counting, per recording, the hits that agree on one
time offset: a true match piles up at one offset, chance hits spread out.

Confidence comes from a chance model. If the ``m`` hits in a recording of
``L`` frames fell on random offsets, the count in one offset bin (``w``
frames wide) would be Poisson with mean ``m * w / (L + Q)`` for a clip of
``Q`` frames. The confidence of a count ``c`` is ``-log10`` of the chance
of ``c`` or more in any bin of any recording searched (a Bonferroni bound
over all bins), so one threshold keeps its meaning as the database grows.

The index lives on disk as segments, each a hash-sorted array of hashes and
positions (memory-mapped at query time). Adding files writes one new segment
and never touches the old ones; removed files are masked until
:meth:`FingerprintIndex.compact` merges the segments.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
import scipy.ndimage
import scipy.signal
import scipy.stats

from experiments.data import cache

__all__ = [
    "DEFAULT_MIN_CONFIDENCE",
    "FingerprintConfig",
    "FingerprintIndex",
    "Landmarks",
    "FingerprintIndexError",
    "Match",
    "landmarks",
    "peaks",
    "rational",
]

# -log10 of the chance of a false match. The Poisson model ignores that other renderings of the same
# notes share landmarks, so the threshold is set from clips outside the index (the report's calibration).
DEFAULT_MIN_CONFIDENCE = 15.0
FORMAT_VERSION = 1
_HASH_BITS = (9, 7, 6)  # anchor frequency bin, frequency step + max_df, time step: 22 bits of the 32


@dataclasses.dataclass(frozen=True)
class FingerprintConfig:
    """Analysis and hashing parameters (an index is only valid for the config it was built with).

    Attributes:
      sample_rate: rate the audio is resampled to (Hz); 8 kHz keeps the strong partials.
      n_fft, hop: STFT window and hop in samples (64 and 32 ms at 8 kHz).
      neighbourhood: ``(frames, bins)`` of the maximum filter a peak must top.
      peaks_per_second: densest constellation kept (the strongest peaks of each second).
      floor_db: peaks more than this below the loudest bin are ignored (silence, dither).
      fan_out: targets paired with each anchor (the nearest in time).
      max_dt: largest anchor-target time step, frames (< 64).
      max_df: largest anchor-target frequency step, bins (< 64).
      offset_tolerance: hits whose offsets differ by up to this many frames count together
        (a clip cut between two frames moves some peaks by one).
    """

    sample_rate: int = 8000
    n_fft: int = 512
    hop: int = 256
    neighbourhood: tuple[int, int] = (11, 21)
    peaks_per_second: float = 24.0
    floor_db: float = 70.0
    fan_out: int = 6
    max_dt: int = 63
    max_df: int = 63
    offset_tolerance: int = 1

    def __post_init__(self):
        if not (0 < self.max_dt < 2 ** _HASH_BITS[2] and 0 < self.max_df < 2 ** (_HASH_BITS[1] - 1)):
            raise ValueError(f"max_dt must be in [1, 63] and max_df in [1, 63], got {self.max_dt}, {self.max_df}")
        if self.n_fft // 2 + 1 > 2 ** _HASH_BITS[0]:
            raise ValueError(f"n_fft={self.n_fft} has more frequency bins than the hash holds (n_fft <= 1022)")

    @property
    def frame_s(self) -> float:
        """Seconds per frame (the resolution of the offsets)."""
        return self.hop / self.sample_rate


@dataclasses.dataclass(frozen=True)
class Landmarks:
    """The hashed peak pairs of one signal.

    Attributes:
      hashes: ``(P,)`` uint32 keys.
      times: ``(P,)`` int64 anchor frames.
      n_frames: length of the signal in frames.
    """

    hashes: np.ndarray
    times: np.ndarray
    n_frames: int


@dataclasses.dataclass(frozen=True)
class Match:
    """A recording that holds the clip.

    Attributes:
      name: the recording's name in the index.
      offset_s: where the clip starts in the recording (seconds, one frame resolution).
      hits: landmarks of the clip found at that offset.
      fraction: ``hits`` over the clip's landmarks (1 = every landmark found).
      confidence: ``-log10`` of the chance of so many hits at one offset in any recording
        (below 0: no more than chance gives).
      speed: speed factor of the clip against the recording (1 unless a speed search found it).
    """

    name: str
    offset_s: float
    hits: int
    fraction: float
    confidence: float
    speed: float = 1.0


def spectrogram_db(audio: np.ndarray, sample_rate: float, config: FingerprintConfig) -> np.ndarray:
    """Log-magnitude STFT, ``(bins, frames)`` in dB, of ``audio`` resampled to ``config.sample_rate``.

    ``sample_rate`` may be a float: reading a clip played ``s`` times too fast at ``sample_rate / s``
    undoes the speed change (see :meth:`FingerprintIndex.identify`).
    """
    audio = np.asarray(audio, dtype=np.float64)
    if audio.ndim != 1:
        raise ValueError(f"audio must be mono, shape (samples,), got {audio.shape}")
    if not np.all(np.isfinite(audio)):
        raise ValueError("audio contains NaN or inf samples")
    if sample_rate != config.sample_rate:
        up, down = rational(config.sample_rate / sample_rate)
        audio = scipy.signal.resample_poly(audio, up, down)
    if len(audio) < config.n_fft:
        return np.zeros((config.n_fft // 2 + 1, 0))
    _, _, stft = scipy.signal.stft(audio, nperseg=config.n_fft, noverlap=config.n_fft - config.hop,
                                   boundary=None, padded=False)
    return 20.0 * np.log10(np.abs(stft) + 1e-10)


def rational(x: float, max_denominator: int = 1000) -> tuple[int, int]:
    """``(up, down)`` with ``up / down`` close to ``x``: the factors of a polyphase resampler."""
    from fractions import Fraction

    fraction = Fraction(x).limit_denominator(max_denominator)
    return fraction.numerator, fraction.denominator


def peaks(log_spec: np.ndarray, config: FingerprintConfig) -> tuple[np.ndarray, np.ndarray]:
    """The constellation: local maxima of ``log_spec`` ``(bins, frames)``, strongest per second kept.

    Returns:
      ``(frames, bins)`` int64 arrays of the peaks, sorted by frame then bin.
    """
    if log_spec.shape[1] == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    size = (config.neighbourhood[1], config.neighbourhood[0])
    local_max = log_spec == scipy.ndimage.maximum_filter(log_spec, size=size, mode="constant", cval=-np.inf)
    local_max &= log_spec > log_spec.max() - config.floor_db
    local_max[0] = False  # DC
    bins, frames = np.nonzero(local_max)
    strength = log_spec[bins, frames]
    # The strongest peaks_per_second of each one-second block: rank within the block by strength.
    frames_per_block = max(1, round(1.0 / config.frame_s))
    block = frames // frames_per_block
    order = np.lexsort((-strength, block))
    block_sorted = block[order]
    rank = np.arange(len(order)) - np.searchsorted(block_sorted, block_sorted, side="left")
    keep = order[rank < config.peaks_per_second * frames_per_block * config.frame_s]
    frames, bins = frames[keep], bins[keep]
    order = np.lexsort((bins, frames))
    return frames[order].astype(np.int64), bins[order].astype(np.int64)


def hash_pairs(anchor_bin: np.ndarray, bin_step: np.ndarray, frame_step: np.ndarray,
               config: FingerprintConfig) -> np.ndarray:
    """32-bit keys of peak pairs: anchor bin, frequency step and time step packed into 22 bits."""
    _, df_bits, dt_bits = _HASH_BITS
    return ((anchor_bin.astype(np.uint32) << (df_bits + dt_bits))
            | ((bin_step + config.max_df).astype(np.uint32) << dt_bits)
            | frame_step.astype(np.uint32))


def landmarks(audio: np.ndarray, sample_rate: float, config: FingerprintConfig = FingerprintConfig()) -> Landmarks:
    """Hashed anchor-target pairs of ``audio`` ``(samples,)``: each peak paired with the next
    ``fan_out`` peaks within ``max_dt`` frames and ``max_df`` bins."""
    log_spec = spectrogram_db(audio, sample_rate, config)
    frames, bins = peaks(log_spec, config)
    anchors, targets = [], []
    for k in range(1, 4 * config.fan_out + 1):  # the k-th next peak in time order
        i = np.arange(len(frames) - k)
        j = i + k
        dt = frames[j] - frames[i]
        ok = (dt >= 1) & (dt <= config.max_dt) & (np.abs(bins[j] - bins[i]) <= config.max_df)
        anchors.append(i[ok])
        targets.append(j[ok])
    anchor, target = np.concatenate(anchors), np.concatenate(targets)
    order = np.lexsort((target, anchor))
    anchor, target = anchor[order], target[order]
    rank = np.arange(len(anchor)) - np.searchsorted(anchor, anchor, side="left")
    anchor, target = anchor[rank < config.fan_out], target[rank < config.fan_out]
    hashes = hash_pairs(bins[anchor], bins[target] - bins[anchor], frames[target] - frames[anchor], config)
    return Landmarks(hashes=hashes, times=frames[anchor], n_frames=log_spec.shape[1])


# --------------------------------------------------------------------------- the index


@dataclasses.dataclass
class _Segment:
    """One immutable batch of files: ``hashes`` sorted, ``positions`` = file start + anchor frame."""

    name: str
    names: list[str]
    keys: list[str]
    starts: np.ndarray   # (F,) int64 first position of each file
    frames: np.ndarray   # (F,) int64 length of each file in frames
    live: np.ndarray     # (F,) bool; False once the file is removed or replaced
    hashes: np.ndarray | None = None
    positions: np.ndarray | None = None

    def to_dict(self) -> dict:
        return {"name": self.name, "names": self.names, "keys": self.keys, "starts": self.starts,
                "frames": self.frames, "live": self.live}

    @classmethod
    def from_dict(cls, d: Mapping) -> "_Segment":
        return cls(d["name"], list(d["names"]), list(d["keys"]), np.asarray(d["starts"], np.int64),
                   np.asarray(d["frames"], np.int64), np.asarray(d["live"], bool))


class FingerprintIndexError(Exception):
    """The index on disk is damaged or was built with another configuration."""


class FingerprintIndex:
    """Inverted index of landmark hashes in ``directory``, grown one segment per :meth:`add`.

    Args:
      directory: where the manifest and segments live (created if missing).
      config: analysis parameters; an index built with other ones raises :class:`FingerprintIndexError`
        (open with ``reset=True`` to start afresh).
      max_segments: :meth:`add` merges all segments when there are more.
      verify: check every segment's checksum on open (a damaged one raises).
    """

    def __init__(self, directory: str | Path, config: FingerprintConfig = FingerprintConfig(), *,
                 max_segments: int = 8, verify: bool = True, reset: bool = False):
        self.directory = Path(directory)
        self.config = config
        self.max_segments = max_segments
        self._verify = verify
        manifest = self.directory / "manifest.json"
        if reset and self.directory.exists():
            shutil.rmtree(self.directory)
        self.segments: list[_Segment] = []
        self._next = 0
        if manifest.exists():
            payload = cache.read_json(manifest)
            if payload.get("format") != FORMAT_VERSION or payload.get("config") != _config_dict(config):
                raise FingerprintIndexError(f"the fingerprint index in {self.directory} was built with other settings")
            self.segments = [_Segment.from_dict(d) for d in payload["segments"]]
            self._next = payload["next"]

    # -- contents

    def __len__(self) -> int:
        return sum(int(s.live.sum()) for s in self.segments)

    def files(self) -> dict[str, str]:
        """Name -> key of every file in the index."""
        return {name: key for s in self.segments for name, key, live in zip(s.names, s.keys, s.live) if live}

    @property
    def n_entries(self) -> int:
        """Stored landmarks (removed files included until compaction)."""
        return sum(len(self._arrays(s)[0]) for s in self.segments)

    @property
    def n_bytes(self) -> int:
        """Size on disk."""
        return sum(p.stat().st_size for p in self.directory.glob("*") if p.is_file())

    @property
    def total_frames(self) -> int:
        return int(sum(s.frames[s.live].sum() for s in self.segments))

    # -- updates

    def add(self, items: Mapping[str, tuple[str, Landmarks]]) -> None:
        """Add files as one new segment: ``items`` maps name -> (key, landmarks); a name already
        in the index is replaced. ``key`` identifies the content (e.g. size and mtime)."""
        if not items:
            return
        self.remove(items)
        names = list(items)
        frames = np.array([items[n][1].n_frames for n in names], np.int64)
        starts = np.concatenate([[0], np.cumsum(frames + 1)[:-1]]).astype(np.int64)
        if starts[-1] + frames[-1] >= 2**32:
            raise ValueError("one segment holds at most 2**32 frames; add the files in smaller batches")
        hashes = np.concatenate([items[n][1].hashes for n in names]).astype(np.uint32)
        positions = np.concatenate([start + items[n][1].times for n, start in zip(names, starts)]).astype(np.uint32)
        self._write_segment(_Segment(f"segment-{self._next:06d}", names, [items[n][0] for n in names], starts,
                                     frames, np.ones(len(names), bool)), hashes, positions)
        if len(self.segments) > self.max_segments and self.total_frames + len(self) < 2**32:
            self.compact()

    def remove(self, names: Iterable[str]) -> None:
        """Mask files out of the index (their landmarks go at the next :meth:`compact`)."""
        names = set(names)
        changed = False
        for segment in self.segments:
            for i, name in enumerate(segment.names):
                if name in names and segment.live[i]:
                    segment.live[i], changed = False, True
        if changed:
            self._write_manifest()

    def compact(self) -> None:
        """Merge every segment into one, dropping removed files (reads them all into memory)."""
        names, keys, frames, hashes, positions = [], [], [], [], []
        base = 0  # first position of the next file in the merged segment
        for segment in self.segments:
            stored_hashes, stored_positions = self._arrays(segment)
            live = np.flatnonzero(segment.live)
            new_start = np.zeros(len(segment.names), np.int64)
            new_start[live] = base + np.concatenate([[0], np.cumsum(segment.frames[live] + 1)[:-1]])
            owner = np.searchsorted(segment.starts, stored_positions, side="right") - 1
            keep = segment.live[owner]
            hashes.append(np.asarray(stored_hashes[keep]))
            positions.append(stored_positions[keep] - segment.starts[owner[keep]] + new_start[owner[keep]])
            names += [segment.names[i] for i in live]
            keys += [segment.keys[i] for i in live]
            frames.append(segment.frames[live])
            base += int((segment.frames[live] + 1).sum())
        if base >= 2**32:
            raise ValueError(f"the merged segment would span {base} frames (at most 2**32): keep the segments")
        old, self.segments = self.segments, []
        if names:
            frames = np.concatenate(frames)
            starts = np.concatenate([[0], np.cumsum(frames + 1)[:-1]]).astype(np.int64)
            self._write_segment(_Segment(f"segment-{self._next:06d}", names, keys, starts, frames,
                                         np.ones(len(names), bool)),
                                np.concatenate(hashes), np.concatenate(positions).astype(np.uint32))
        else:
            self._write_manifest()
        for segment in old:
            for path in self._paths(segment):
                path.unlink(missing_ok=True)
                path.with_name(path.name + ".sha256").unlink(missing_ok=True)

    def _paths(self, segment: _Segment) -> tuple[Path, Path]:
        return self.directory / f"{segment.name}.hashes.npy", self.directory / f"{segment.name}.positions.npy"

    def _write_segment(self, segment: _Segment, hashes: np.ndarray, positions: np.ndarray) -> None:
        order = np.argsort(hashes, kind="stable")
        hashes_path, positions_path = self._paths(segment)
        cache.save_array(hashes_path, hashes[order])
        cache.save_array(positions_path, positions[order])
        self.segments.append(segment)
        self._next += 1
        self._write_manifest()  # last: a crash before it leaves the old manifest, still consistent

    def _write_manifest(self) -> None:
        cache.write_json(self.directory / "manifest.json",
                         {"format": FORMAT_VERSION, "config": _config_dict(self.config), "next": self._next,
                          "segments": [s.to_dict() for s in self.segments]})

    def _arrays(self, segment: _Segment) -> tuple[np.ndarray, np.ndarray]:
        if segment.hashes is None:
            paths = self._paths(segment)
            if self._verify and not all(cache.is_intact(p) for p in paths):
                raise FingerprintIndexError(f"segment {segment.name} of the fingerprint index in {self.directory} is damaged")
            segment.hashes, segment.positions = (np.load(p, mmap_mode="r", allow_pickle=False) for p in paths)
        return segment.hashes, segment.positions

    # -- queries

    def identify(self, audio: np.ndarray, sample_rate: float, *, top: int = 5,
                 min_confidence: float = DEFAULT_MIN_CONFIDENCE,
                 speeds: Sequence[float] = (1.0,)) -> list[Match]:
        """The recordings that hold the clip ``audio`` ``(samples,)``, most confident first.

        ``speeds``: speed factors to try (a clip played 5% fast matches at 1.05); each costs one
        more lookup and widens the Bonferroni bound. Only matches with ``confidence >=
        min_confidence`` are returned, so a clip of a recording not in the index gives ``[]``.
        """
        found: dict[str, Match] = {}
        for speed in speeds:
            query = landmarks(audio, sample_rate / speed, self.config)
            for match in self.lookup(query, min_confidence=min(min_confidence, 0.0), n_tests_factor=len(speeds)):
                match = dataclasses.replace(match, speed=float(speed))
                if match.name not in found or match.confidence > found[match.name].confidence:
                    found[match.name] = match
        ranked = sorted(found.values(), key=lambda m: -m.confidence)
        return [m for m in ranked if m.confidence >= min_confidence][:top]

    def lookup(self, query: Landmarks, *, min_confidence: float = 0.0, n_tests_factor: int = 1,
               max_postings: int = 2_000_000) -> list[Match]:
        """Best offset and its confidence for every recording with hits and ``confidence >
        min_confidence`` (0: more hits than chance gives; ``-inf``: all), most confident first.

        ``max_postings``: a budget of stored entries to read. The query's hashes are taken rarest
        first until it is spent: common hashes cost the most and tell the least, and the budget
        keeps a query's time bounded however large the index grows.
        """
        if len(query.hashes) == 0 or not self.segments:
            return []
        width = 2 * self.config.offset_tolerance + 1
        n_tests = n_tests_factor * sum(int((s.frames[s.live] + query.n_frames).sum()) for s in self.segments)
        spans = [self._postings(segment, query.hashes) for segment in self.segments]
        common = _over_budget(sum(n for _, n in spans), max_postings)
        matches = []
        for segment, (first, n) in zip(self.segments, spans):
            slot, offset, count, total = self._best_offsets(segment, query, first, np.where(common, 0, n))
            mean = total * width / (segment.frames[slot] + query.n_frames)
            confidence = -(_log10_chance(count, mean) + np.log10(n_tests))
            for i in np.flatnonzero(confidence > min_confidence):
                matches.append(Match(segment.names[slot[i]], float(offset[i] * self.config.frame_s), int(count[i]),
                                     float(count[i] / len(query.hashes)), float(confidence[i])))
        return sorted(matches, key=lambda m: -m.confidence)

    def _postings(self, segment: _Segment, hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """First posting and number of postings of each of ``hashes`` in ``segment``."""
        stored, _ = self._arrays(segment)
        first = np.searchsorted(stored, hashes, side="left")
        return first, np.searchsorted(stored, hashes, side="right") - first

    def _best_offsets(self, segment: _Segment, query: Landmarks, first: np.ndarray, n: np.ndarray):
        """Per live file of ``segment`` with hits: ``(slot, best offset in frames, hits there, all
        hits)`` as arrays, hits counted over ``offset_tolerance`` frames either side."""
        _, positions = self._arrays(segment)
        empty = (np.zeros(0, np.int64),) * 4
        if n.sum() == 0:
            return empty
        entry = np.repeat(first - (np.cumsum(n) - n), n) + np.arange(n.sum())
        position = positions[entry].astype(np.int64)
        slot = np.searchsorted(segment.starts, position, side="right") - 1
        offset = position - segment.starts[slot] - np.repeat(query.times, n)
        live = segment.live[slot]
        slot, offset = slot[live], offset[live]
        if len(slot) == 0:
            return empty
        total = np.bincount(slot, minlength=len(segment.names))
        # Offsets in the file as non-negative keys: (slot, offset) -> one int64, then count them.
        shift = int(query.times.max()) + 1
        keys, counts = np.unique(slot * (2**32) + offset + shift, return_counts=True)
        windowed = counts.copy()
        for d in range(1, self.config.offset_tolerance + 1):
            for neighbour in (keys - d, keys + d):
                at = np.minimum(np.searchsorted(keys, neighbour), len(keys) - 1)
                windowed += np.where(keys[at] == neighbour, counts[at], 0)
        key_slot = keys // (2**32)
        order = np.lexsort((-windowed, key_slot))  # per slot, the largest windowed count first
        best = order[np.r_[True, key_slot[order][1:] != key_slot[order][:-1]]]
        return key_slot[best], keys[best] % (2**32) - shift, windowed[best], total[key_slot[best]]


def _over_budget(postings: np.ndarray, budget: int) -> np.ndarray:
    """Mask of the hashes left out when they are read rarest first until ``budget`` entries are read."""
    order = np.argsort(postings, kind="stable")
    left_out = np.empty(len(postings), bool)
    left_out[order] = np.cumsum(postings[order]) > budget
    return left_out


def _log10_chance(count, mean) -> np.ndarray:
    """``log10 P(X >= count)`` for ``X ~ Poisson(mean)`` (elementwise); below 1e-308 the first term
    of the tail (``P(X = count)``, a bound within a factor ``1 / (1 - mean / count)``) keeps it finite."""
    count, mean = np.asarray(count, np.float64), np.asarray(mean, np.float64)
    log_sf = scipy.stats.poisson.logsf(count - 1, mean)
    log_sf = np.where(np.isfinite(log_sf), log_sf, scipy.stats.poisson.logpmf(count, mean))
    return log_sf / np.log(10)


def _config_dict(config: FingerprintConfig) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()}

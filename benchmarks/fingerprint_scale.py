"""Landmark fingerprint index at growing sizes, up to 1,000 hours: size on disk, query time, identification.

    python benchmarks/fingerprint_scale.py                    # 10, 100, 1000 hours (10 min on 2 cores, 3.8 GB disk)
    python benchmarks/fingerprint_scale.py --hours 2 10       # quick check (a minute)
    python benchmarks/fingerprint_scale.py --dir /scratch     # where the index is written (default: a temporary folder)

The landmark density and the hash distribution are measured on the embedded
corpus (conf/data/small.yaml): the database is filled with synthetic 4-minute
files at that density, whose hashes are drawn with replacement from the real
corpus's hashes (so the postings per hash follow the real distribution, not a
uniform one) and whose anchor times are uniform over the file. The real
recordings are added too (their own landmarks, one more segment), and the
queries are real clips: 5 s and 10 s at random offsets, clean and with noise
at 10 dB SNR, through ``FingerprintIndex.identify`` (landmark extraction
included). A clip is identified when the top match is its recording with the
offset within 0.1 s. False positives: clips of the versions ``*__v2`` kept out
of the index; any match at or above ``--min-confidence`` (default: the module's
threshold, also applied to the known clips) counts.

Prints a Markdown table, one row per size (built incrementally: batches of
``--batch-hours`` are added to one index, each one segment): entries, bytes on
disk, cumulative time of the ``add`` calls (generating the synthetic landmarks
not included), query time (mean / median, index in the OS page cache after
one warm-up query), identified and false positives; then the same by clip
length and noise. The real corpus is 12 Bach chorales, so its hash
distribution is narrow: every query hash hits far more entries than in a
1,000-hour database of varied music (the expected number is printed), and the
query times are pessimistic. ``--hash-model fields`` draws the anchor bin,
frequency step and time step independently from their real distributions
instead, which spreads the entries over many more hashes.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the project, when not installed

from _timing import RECORD_HELP, recorded_output  # noqa: E402
from experiments.data.synth import add_noise  # noqa: E402
from experiments.retrieval import fingerprint  # noqa: E402
from experiments.sync import positive_number  # noqa: E402

FILE_S = 240.0  # length of a synthetic file, seconds
CLIP_S = (5.0, 10.0)
SNR_DB = 10.0
OFFSET_TOLERANCE_S = 0.1
HELD_OUT = "__v2"  # versions kept out of the index: their clips must not match


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def real_landmarks(config: fingerprint.FingerprintConfig):
    """The small corpus: (versions, their landmarks, their audio)."""
    from experiments.data import build_corpus, corpus_config

    corpus = build_corpus(corpus_config("small"), progress=False)
    audio = {v.version_id: v.load_audio() for v in corpus.versions}
    marks = {v.version_id: fingerprint.landmarks(audio[v.version_id], v.sample_rate, config) for v in corpus.versions}
    return corpus.versions, marks, audio


def hash_sampler(hashes: np.ndarray, model: str):
    """``draw(rng, n)``: ``n`` uint32 hashes from the empirical distribution of ``hashes``, and the
    expected fraction of the synthetic entries that a real hash (drawn from ``hashes``) hits."""
    if model == "pool":
        _, counts = np.unique(hashes, return_counts=True)
        p = counts / counts.sum()

        def draw(rng: np.random.Generator, n: int) -> np.ndarray:
            return hashes[rng.integers(0, len(hashes), size=n, dtype=np.int32)]

        return draw, float((p**2).sum())
    # "fields": the three packed fields drawn independently, each from its own empirical distribution.
    shifts = (13, 6, 0)  # anchor bin << 13 | (frequency step + max_df) << 6 | time step (see fingerprint.hash_pairs)
    masks = (0x1FF, 0x7F, 0x3F)
    fields = [((hashes >> s) & m).astype(np.uint32) for s, m in zip(shifts, masks)]

    def draw(rng: np.random.Generator, n: int) -> np.ndarray:
        out = np.zeros(n, np.uint32)
        for values, shift in zip(fields, shifts):
            out |= values[rng.integers(0, len(values), size=n, dtype=np.int32)] << np.uint32(shift)
        return out

    # A real hash's chance under the model: the product of its fields' frequencies; averaged over the real hashes.
    chance = np.ones(len(hashes))
    for values in fields:
        _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
        chance *= counts[inverse] / len(values)
    return draw, float(chance.mean())


def synthetic_batch(rng: np.random.Generator, draw, first: int, n_files: int, per_file: int, n_frames: int):
    """``n_files`` synthetic files as ``add``'s mapping, built in one go (each file's landmarks are views)."""
    hashes = draw(rng, n_files * per_file)
    times = rng.integers(0, n_frames, size=n_files * per_file, dtype=np.int64)
    return {f"synthetic-{first + i:07d}": ("synthetic",
                                         fingerprint.Landmarks(hashes[i * per_file:(i + 1) * per_file],
                                                               times[i * per_file:(i + 1) * per_file], n_frames))
            for i in range(n_files)}


def make_clips(versions, audio, n: int, rng: np.random.Generator):
    """``{(clip_s, noisy): [(version_id, start_s, clip), ...]}``, ``n`` clips each from the given versions."""
    clips = {}
    for clip_s in CLIP_S:
        for noisy in (False, True):
            chosen = []
            for k in range(n):
                v = versions[k % len(versions)]
                length = int(round(clip_s * v.sample_rate))
                start = int(rng.integers(0, len(audio[v.version_id]) - length + 1))
                clip = audio[v.version_id][start:start + length]
                if noisy:
                    clip = add_noise(clip, SNR_DB, rng)
                chosen.append((v.version_id, start / v.sample_rate, clip))
            clips[clip_s, noisy] = chosen
    return clips


def run_queries(index, clips, sample_rate: int, known: bool, min_confidence: float):
    """Per clip kind: (query times in ms, successes, confidence): if ``known``, successes are the clips
    identified and confidence the lowest of the right match; else the clips with a match (false positives)
    and the highest confidence of one. ``identify`` runs without a threshold (the same work), applied here."""
    results = {}
    for kind, chosen in clips.items():
        times, successes, confidences = [], 0, []
        for version_id, start_s, clip in chosen:
            started = time.perf_counter()
            matches = index.identify(clip, sample_rate, min_confidence=0.0)
            times.append(1e3 * (time.perf_counter() - started))
            if known:
                right = [m for m in matches if m.name == version_id and abs(m.offset_s - start_s) <= OFFSET_TOLERANCE_S]
                confidences.append(max((m.confidence for m in right), default=0.0))
                successes += bool(right) and right[0] is matches[0] and matches[0].confidence >= min_confidence
            else:
                confidences.append(max((m.confidence for m in matches), default=0.0))
                successes += confidences[-1] >= min_confidence
        results[kind] = (times, successes, min(confidences) if known else max(confidences))
    return results


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hours", type=positive_number(float), nargs="+", default=[10.0, 100.0, 1000.0],
                        help="index sizes (hours of synthetic audio) at which to measure")
    parser.add_argument("--batch-hours", type=positive_number(float), default=250.0,
                        help="hours per add() call, i.e. per segment (peak memory grows with it: ~5 GB at 250 h)")
    parser.add_argument("--queries", type=positive_number(int), default=20,
                        help="clips per kind (5 s / 10 s, clean / noisy), for the known and held-out versions each")
    parser.add_argument("--min-confidence", type=float, default=fingerprint.DEFAULT_MIN_CONFIDENCE,
                        help="threshold of identify (default: the module's)")
    parser.add_argument("--hash-model", choices=["pool", "fields"], default="pool",
                        help="pool: hashes drawn from the real ones; fields: their three fields drawn independently")
    parser.add_argument("--dir", default=None, help="folder for the index's temporary folder (default: the system's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--record", action="store_true", help=RECORD_HELP)
    args = parser.parse_args(argv)
    config = fingerprint.FingerprintConfig()
    if args.batch_hours * 3600 / config.frame_s >= 2**32:
        parser.error("--batch-hours too large: a segment holds at most 2**32 frames")
    with recorded_output(args.record):
        log("fingerprinting the small corpus ...")
        versions, marks, audio = real_landmarks(config)
        sample_rate = versions[0].sample_rate
        pool = np.concatenate([marks[v.version_id].hashes for v in versions])
        real_s = sum(marks[v.version_id].n_frames for v in versions) * config.frame_s
        density = len(pool) / real_s
        draw, collision = hash_sampler(pool, args.hash_model)
        n_frames = int(round(FILE_S / config.frame_s))
        per_file = int(round(density * n_frames * config.frame_s))
        sizes = sorted(set(args.hours))
        print(f"Measured on the small corpus ({len(versions)} recordings, {real_s / 60:.1f} min): "
              f"{density:.1f} landmarks per second, {len(np.unique(pool)):,} distinct hashes among {len(pool):,}. "
              f"Synthetic files: {FILE_S / 60:g} min, {per_file:,} landmarks, hashes from the "
              f"{'real hashes' if args.hash_model == 'pool' else 'real hash fields drawn independently'}; "
              f"a query hash hits {collision:.2e} of the entries on average "
              f"({collision * sizes[-1] * 3600 * density:,.0f} at {sizes[-1]:g} h).\n", flush=True)

        known = [v for v in versions if not v.version_id.endswith(HELD_OUT)]
        held_out = [v for v in versions if v.version_id.endswith(HELD_OUT)]
        rng = np.random.default_rng(args.seed)
        known_clips = make_clips(known, audio, args.queries, rng)
        unknown_clips = make_clips(held_out, audio, args.queries, rng)

        # One segment per add (and one for the real recordings); compact() would load and merge everything
        # (several GB at 1,000 h) and take minutes, so max_segments is set above the number of batches.
        n_batches = sum(int(np.ceil((b - a) / args.batch_hours - 1e-9)) for a, b in zip([0.0] + sizes, sizes))
        breakdown = []
        with tempfile.TemporaryDirectory(dir=args.dir, prefix="fingerprint-scale-") as tmp:
            index = fingerprint.FingerprintIndex(Path(tmp) / "index", config, verify=False,
                                                 max_segments=max(64, n_batches + 2))
            index.add({v.version_id: ("real", marks[v.version_id]) for v in known})
            print("| hours indexed | entries (millions) | index on disk (GB) | build (s) | query 5 s clip (ms) "
                  "| query 10 s clip (ms) | identified (n/N) | false positives (n/N) |")
            print("|---:|---:|---:|---:|---:|---:|---:|---:|", flush=True)
            done, build_s, n_files = 0.0, 0.0, 0
            for hours in sizes:
                while done < hours - 1e-9:
                    step = min(args.batch_hours, hours - done)
                    count = max(1, int(round(step * 3600 / FILE_S)))
                    started = time.perf_counter()
                    items = synthetic_batch(np.random.default_rng([args.seed, n_files]), draw, n_files, count,
                                            per_file, n_frames)
                    generated = time.perf_counter()
                    index.add(items)
                    del items
                    build_s += time.perf_counter() - generated
                    n_files += count
                    done += step
                    log(f"  {done:g} h: {count} files generated in {generated - started:.1f} s, "
                        f"added in {time.perf_counter() - generated:.1f} s")
                index.identify(known_clips[CLIP_S[0], False][0][2], sample_rate)  # warm-up: page cache, imports
                log(f"  {hours:g} h: querying ...")
                found = run_queries(index, known_clips, sample_rate, True, args.min_confidence)
                false = run_queries(index, unknown_clips, sample_rate, False, args.min_confidence)
                cells = []
                for clip_s in CLIP_S:
                    times = [t for noisy in (False, True) for t in found[clip_s, noisy][0] + false[clip_s, noisy][0]]
                    cells.append(f"{statistics.mean(times):.0f} / {statistics.median(times):.0f}")
                n_found = sum(s for _, s, _ in found.values())
                n_false = sum(s for _, s, _ in false.values())
                n_known = sum(len(c) for c in known_clips.values())
                n_unknown = sum(len(c) for c in unknown_clips.values())
                print(f"| {hours:g} | {index.n_entries / 1e6:.1f} | {index.n_bytes / 1e9:.2f} | {build_s:.1f} "
                      f"| {cells[0]} | {cells[1]} | {n_found}/{n_known} | {n_false}/{n_unknown} |", flush=True)
                for kind in known_clips:
                    times = found[kind][0] + false[kind][0]
                    breakdown.append((hours, kind, statistics.mean(times), statistics.median(times),
                                      found[kind][1], len(known_clips[kind]), false[kind][1],
                                      len(unknown_clips[kind]), found[kind][2], false[kind][2]))
        print(f"\nA match counts when its confidence is >= {args.min_confidence:g}. Query times are mean / median "
              "over the known and held-out clips; by kind, with the lowest confidence of a right match and the "
              "highest of a match to a held-out clip (the margin around the threshold):\n")
        print("| hours indexed | clip | noise | query mean (ms) | query median (ms) | identified | false positives "
              "| lowest right | highest held-out |")
        print("|---:|---:|---|---:|---:|---:|---:|---:|---:|")
        for hours, (clip_s, noisy), mean, median, n_found, n_known, n_false, n_unknown, low, high in breakdown:
            print(f"| {hours:g} | {clip_s:g} s | {f'{SNR_DB:g} dB SNR' if noisy else 'none'} | {mean:.0f} "
                  f"| {median:.0f} | {n_found}/{n_known} | {n_false}/{n_unknown} | {low:.1f} | {high:.1f} |")


if __name__ == "__main__":
    main()

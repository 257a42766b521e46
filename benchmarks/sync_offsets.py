"""How much of the audio-audio beat error is a constant lag between the two recordings of a pair.

The ground truth of a rendered recording is the MIDI note-on of each beat. A sampled instrument
with a slow attack (FluidR3's strings and organ) sounds tens of milliseconds after its note-on, so
an alignment that matches what is heard is off by the difference of the two instruments' attack
times at every beat of the pair: a constant, signed offset. This script splits the error into
that per-pair offset (the median signed error of the pair) and what is left around it, for this
project's default synchronization (conf/sync) and for the Sync Toolbox, on the project's renders
and, where FluidSynth is installed, on renders with every General-MIDI SoundFont installed (or
those given by --soundfont).

Usage:
    python benchmarks/sync_offsets.py [--cache DIR] [--per-collection 2] [--pairs] [--soundfont PATH ...]
                                      [--record]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _timing import RECORD_HELP, recorded_output  # noqa: E402
from experiments import sync  # noqa: E402
from experiments.data import corpus as corpus_lib  # noqa: E402
from experiments.sync.features import align_prepared, prepare_audio  # noqa: E402
from sync_accuracy import NO_SOUNDFONT, add_soundfont_argument, chosen_soundfonts, recording_sets  # noqa: E402

TOLERANCE_S = 0.05


def project_paths(pairs, recordings: dict) -> tuple[list[np.ndarray], float]:
    """Warping path of this project's default synchronization for every pair, and its frame rate."""
    config = sync.default_config()
    versions = {v.version_id: v for pair in pairs for v in pair}
    prepared = {vid: prepare_audio(recordings[vid], v.sample_rate, config) for vid, v in versions.items()}
    paths = [align_prepared(prepared[a.version_id], prepared[b.version_id], config).path for a, b in pairs]
    return paths, config.rate_hz


def toolbox_paths(pairs, recordings: dict) -> tuple[list[np.ndarray], float] | None:
    """Warping path of the Sync Toolbox (MrMsDTW, chroma + DLNCO) for every pair and its frame rate,
    or None where it is not installed."""
    import _synctoolbox

    if not _synctoolbox.available():
        return None
    return _synctoolbox.pair_paths(pairs, recordings), _synctoolbox.FEATURE_RATE


def signed_errors(pairs, paths: list[np.ndarray], rate_hz: float) -> list[np.ndarray]:
    """Per pair, ``warp(beat of A) - beat of B`` in seconds: positive where the path maps late."""
    return [sync.warp_times(a.beats_s, path, rate_hz) - b.beats_s for (a, b), path in zip(pairs, paths)]


def offset_summary(errors: list[np.ndarray]) -> list[str]:
    """Table cells: beats within 50 ms, the same around each pair's median, median |pair offset|."""
    raw = np.abs(np.concatenate(errors))
    centred = np.abs(np.concatenate([e - np.median(e) for e in errors]))
    offsets = np.abs([np.median(e) for e in errors])
    return [f"{100 * np.mean(raw <= TOLERANCE_S):.2f}", f"{100 * np.mean(centred <= TOLERANCE_S):.1f}",
            f"{1000 * np.median(offsets):.0f}", f"{1000 * np.max(offsets):.0f}", str(raw.size)]


def instruments(version) -> str:
    return "+".join(sorted(set(version.performance.instruments)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache",
                        default=os.environ.get("SDTW_RETRIEVAL_CACHE", str(ROOT / ".cache" / "sdtw-retrieval")))
    parser.add_argument("--per-collection", type=int, default=2,
                        help="test pieces per collection of the small corpus, as in sync_accuracy.py")
    parser.add_argument("--pairs", action="store_true", help="also print every pair's offset and its instruments")
    add_soundfont_argument(parser)
    parser.add_argument("--record", action="store_true", help=RECORD_HELP)
    args = parser.parse_args()
    soundfonts = chosen_soundfonts(args)

    with recorded_output(args.record):
        small = corpus_lib.build_corpus(corpus_lib.corpus_config("small", cache_dir=args.cache), progress=False)
        corpus = small.subset("test", per_collection=args.per_collection)
        pairs = corpus.version_pairs()
        sets = recording_sets(corpus, soundfonts)
        print("## Offset of each pair\n")
        print(f"Audio-audio beat errors, {len(pairs)} version pairs of {len(corpus.pieces)} "
              "test pieces. Offset of a pair: the median of its signed errors.\n")
        if len(sets) == 1:
            print(NO_SOUNDFONT)
        print("| recordings | method | <= 50 ms (%) | <= 50 ms around the pair's offset (%) "
              "| median pair offset (ms) | largest pair offset (ms) | beats |")
        print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
        per_pair = {}
        for label, recordings in sets.items():
            methods = {"this project (conf/sync)": project_paths(pairs, recordings),
                       "Sync Toolbox (MrMsDTW, chroma + DLNCO)": toolbox_paths(pairs, recordings)}
            for name, found in methods.items():
                if found is None:
                    print(f"| {label} | {name} | not installed (`pip install synctoolbox`) | | | | |")
                    continue
                errors = signed_errors(pairs, *found)
                per_pair[label, name] = errors
                print(f"| {label} | {name} | {' | '.join(offset_summary(errors))} |", flush=True)
        if args.pairs:
            for (label, name), errors in per_pair.items():
                print(f"\n## Pairs: {label}, {name}\n")
                print("| A | B | instruments of A | instruments of B | offset (ms) | <= 50 ms (%) | beats |")
                print("| --- | --- | --- | --- | ---: | ---: | ---: |")
                for (a, b), e in zip(pairs, errors):
                    print(f"| {a.version_id} | {b.version_id} | {instruments(a)} | {instruments(b)} "
                          f"| {1000 * np.median(e):+.0f} | {100 * np.mean(np.abs(e) <= TOLERANCE_S):.1f} | {e.size} |")


if __name__ == "__main__":
    main()

"""How much of the audio-audio beat error is a constant lag between the two recordings of a pair.

The ground truth of a rendered recording is the MIDI note-on of each beat. A sampled instrument
with a slow attack (FluidR3's strings and organ) sounds tens of milliseconds after its note-on, so
an alignment that matches what is heard is off by the difference of the two instruments' attack
times at every beat of the pair: a constant, signed offset. This script splits the error into
that per-pair offset (the median signed error of the pair) and what is left around it, for this
project's default synchronization (conf/sync) and for the Sync Toolbox, on the project's renders
and, where FluidSynth and a General-MIDI SoundFont are installed, on SoundFont renders.

Usage:
    python benchmarks/sync_offsets.py [--cache DIR] [--per-collection 2] [--pairs] [--record]
"""

from __future__ import annotations

import argparse
import itertools
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

TOLERANCE_S = 0.05


def version_pairs(corpus: corpus_lib.Corpus) -> list[tuple]:
    return [pair for piece in corpus.pieces for pair in itertools.combinations(corpus.versions_of(piece), 2)]


def project_paths(corpus, recordings: dict) -> list[tuple[np.ndarray, float]]:
    """Warping path and frame rate of this project's default synchronization, per pair."""
    config = sync.default_config()
    prepared = {v.version_id: prepare_audio(recordings[v.version_id], v.sample_rate, config) for v in corpus.versions}
    return [(align_prepared(prepared[a.version_id], prepared[b.version_id], config).path, config.rate_hz)
            for a, b in version_pairs(corpus)]


def toolbox_paths(corpus, recordings: dict) -> list[tuple[np.ndarray, float]] | None:
    """Warping path and frame rate of the Sync Toolbox (MrMsDTW, chroma + DLNCO) per pair, or None."""
    import _synctoolbox

    if not _synctoolbox.available():
        return None
    features = {v.version_id: _synctoolbox.features(recordings[v.version_id], v.sample_rate) for v in corpus.versions}
    return [(_synctoolbox.path(features[a.version_id], features[b.version_id]), _synctoolbox.FEATURE_RATE)
            for a, b in version_pairs(corpus)]


def signed_errors(corpus, paths: list[tuple[np.ndarray, float]]) -> list[np.ndarray]:
    """Per pair, ``warp(beat of A) - beat of B`` in seconds: positive where the path maps late."""
    return [sync.warp_times(a.beats_s, path, rate) - b.beats_s
            for (a, b), (path, rate) in zip(version_pairs(corpus), paths)]


def offset_summary(errors: list[np.ndarray]) -> list[str]:
    """Table cells: beats within 50 ms, the same around each pair's median, median |pair offset|."""
    raw = np.abs(np.concatenate(errors))
    centred = np.abs(np.concatenate([e - np.median(e) for e in errors]))
    offsets = np.abs([np.median(e) for e in errors])
    return [f"{100 * np.mean(raw <= TOLERANCE_S):.1f}", f"{100 * np.mean(centred <= TOLERANCE_S):.1f}",
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
    parser.add_argument("--record", action="store_true", help=RECORD_HELP)
    args = parser.parse_args()
    from experiments.data.soundfont import find_soundfont, soundfont_version_audio

    with recorded_output(args.record):
        small = corpus_lib.build_corpus(corpus_lib.corpus_config("small", cache_dir=args.cache), progress=False)
        corpus = small.subset("test", per_collection=args.per_collection)
        sets = {"project's synthesizer": {v.version_id: v.load_audio() for v in corpus.versions}}
        soundfont = find_soundfont()
        if soundfont is not None:
            sets[f"FluidSynth, {soundfont.name}"] = {
                v.version_id: soundfont_version_audio(v, soundfont, corpus.root / "soundfont") for v in corpus.versions}
        print("## Offset of each pair\n")
        print(f"Audio-audio beat errors, {len(version_pairs(corpus))} version pairs of {len(corpus.pieces)} "
              "test pieces. Offset of a pair: the median of its signed errors.\n")
        if soundfont is None:
            print("No SoundFont render: `fluidsynth` or a General-MIDI SoundFont is missing.\n")
        print("| recordings | method | <= 50 ms (%) | <= 50 ms around the pair's offset (%) "
              "| median pair offset (ms) | largest pair offset (ms) | beats |")
        print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
        per_pair = {}
        for label, recordings in sets.items():
            methods = {"this project (conf/sync)": project_paths(corpus, recordings),
                       "Sync Toolbox (MrMsDTW, chroma + DLNCO)": toolbox_paths(corpus, recordings)}
            for name, paths in methods.items():
                if paths is None:
                    print(f"| {label} | {name} | not installed (`pip install synctoolbox`) | | | | |")
                    continue
                errors = signed_errors(corpus, paths)
                per_pair[label, name] = errors
                print(f"| {label} | {name} | {' | '.join(offset_summary(errors))} |", flush=True)
        if args.pairs:
            for (label, name), errors in per_pair.items():
                print(f"\n## Pairs: {label}, {name}\n")
                print("| A | B | instruments of A | instruments of B | offset (ms) | <= 50 ms (%) | beats |")
                print("| --- | --- | --- | --- | ---: | ---: | ---: |")
                for (a, b), e in zip(version_pairs(corpus), errors):
                    print(f"| {a.version_id} | {b.version_id} | {instruments(a)} | {instruments(b)} "
                          f"| {1000 * np.median(e):+.0f} | {100 * np.mean(np.abs(e) <= TOLERANCE_S):.1f} | {e.size} |")


if __name__ == "__main__":
    main()

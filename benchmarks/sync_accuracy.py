"""Corpus size/build time, synchronization accuracy beside the Sync Toolbox, and the cost of a 20-minute pair.

Prints tables (markdown) of:
  1. the embedded corpus (conf/data/small.yaml): pieces, versions, minutes of audio, build time;
     the full corpus (conf/data/full.yaml) estimated from an evenly spaced subset;
  2. beat errors of this project (the defaults of conf/sync, and the chroma-only 20 Hz pipeline
     it replaced) and of the Sync Toolbox (MrMsDTW with chroma and DLNCO; `pip install
     synctoolbox`) on the same pairs: every pair of versions of each of the first
     ``--per-collection`` test pieces of every collection (bach, haydn, ...) of the small corpus,
     and each version against its score, as rendered by the project's synthesizer and by FluidSynth
     with every General-MIDI SoundFont installed or given by --soundfont (sampled instruments,
     release tails; FluidR3 is the one the defaults were chosen on, with train pieces; the others
     are sounds no setting was chosen on; skipped without `fluidsynth`: `apt-get install fluidsynth
     fluid-soundfont-gm musescore-general-soundfont-small timgm6mb-soundfont`);
  3. audio-audio variants on the project's renders (full resolution vs multiscale vs CENS vs linear);
  4. seconds per pair of the command line, all pairs in one process (--pairs) vs a process per pair;
  5. time and peak memory of multiscale vs full-resolution DTW on a synthetic
     pair of ~20-minute recordings (concatenated chorales), each alignment in a
     fresh subprocess so that peak RSS is its own.

Usage:
    python benchmarks/sync_accuracy.py [--cache DIR] [--per-collection 2] [--full-subset 12] [--long-minutes 20]
                                       [--full-rates 5,10] [--skip-long] [--timing-pairs 8]
                                       [--soundfont PATH ...] [--record]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _timing import RECORD_HELP, recorded_output  # noqa: E402
from experiments import sync  # noqa: E402
from experiments.sync.dtw import block_mean  # noqa: E402
from experiments.data import corpus as corpus_lib  # noqa: E402
from experiments.data.performance import render_version  # noqa: E402
from experiments.data.score import resolve_corpus_paths  # noqa: E402


def load_config(name: str, cache_dir: str) -> corpus_lib.CorpusConfig:
    return corpus_lib.corpus_config(name, cache_dir=cache_dir)


def corpus_table(cache_dir: str, full_subset: int) -> corpus_lib.Corpus:
    small = corpus_lib.build_corpus(load_config("small", cache_dir), progress=False)
    rows = [("small", small.summary())]
    full_config = load_config("full", cache_dir)
    all_sources = resolve_corpus_paths(full_config.pieces)
    step = max(1, len(all_sources) // full_subset)
    subset = tuple(all_sources[::step][:full_subset])
    sub = corpus_lib.build_corpus(corpus_lib.dataclasses.replace(full_config, name="full-subset", pieces=subset),
                                  progress=False)
    scale = len(all_sources) / len(sub.pieces)
    print("\n## Corpus\n")
    print("| corpus | pieces | versions | minutes of audio | build time (s) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, s in rows:
        print(f"| {name} | {s['pieces']} | {s['versions']} | {s['minutes']:.1f} | {s['build_seconds']:.1f} |")
    s = sub.summary()
    print(f"| full: subset measured | {s['pieces']} | {s['versions']} | {s['minutes']:.1f} "
          f"| {s['build_seconds']:.1f} |")
    print(f"| full: estimate (x{scale:.1f}) | {len(all_sources)} | {int(s['versions'] * scale)} | "
          f"{s['minutes'] * scale:.0f} | {s['build_seconds'] * scale:.0f} |")
    return small


def _stats_cells(errors_s: np.ndarray) -> str:
    # Two decimals within 50 ms: the share the targets are set on, which one decimal can round up to them.
    s = sync.beat_error_stats(errors_s)
    return (f"{s['within_50ms_pct']:.2f} | {s['within_100ms_pct']:.1f} | {s['mean_ms']:.1f} | "
            f"{1000 * np.max(errors_s):.0f}")


def recording_sets(corpus: corpus_lib.Corpus, soundfonts: Sequence[Path]) -> dict[str, dict[str, np.ndarray]]:
    """Renderer label -> version id -> audio: the project's renders, and FluidSynth renders with
    each of ``soundfonts`` (the same performances)."""
    from experiments.data.soundfont import soundfont_version_audio

    sets = {"project's synthesizer": {v.version_id: v.load_audio() for v in corpus.versions}}
    for soundfont in soundfonts:
        sets[f"FluidSynth, {soundfont.name}"] = {
            v.version_id: soundfont_version_audio(v, soundfont, corpus.root / "soundfont") for v in corpus.versions}
    return sets


def add_soundfont_argument(parser: argparse.ArgumentParser) -> None:
    """``--soundfont PATH`` (repeatable); without it, every General-MIDI SoundFont installed."""
    parser.add_argument("--soundfont", action="append", type=Path, metavar="PATH",
                        help="render with this SoundFont too (repeatable; default: every one installed, "
                             "FluidR3 first: the synchronization defaults were chosen on its train-piece renders)")


def chosen_soundfonts(args: argparse.Namespace) -> list[Path]:
    """The SoundFonts of ``--soundfont``, else every one installed (FluidSynth needed either way)."""
    from experiments.data.soundfont import find_soundfonts

    if args.soundfont:
        missing = [str(p) for p in args.soundfont if not p.is_file()]
        if missing:
            raise SystemExit(f"--soundfont: no such file: {', '.join(missing)}")
        return list(args.soundfont)
    return find_soundfonts()


NO_SOUNDFONT = ("No SoundFont render: `fluidsynth` or a General-MIDI SoundFont is missing "
                "(`apt-get install fluidsynth fluid-soundfont-gm musescore-general-soundfont-small "
                "timgm6mb-soundfont`).\n")


def _toolbox(corpus, recordings: dict) -> np.ndarray:
    """Audio-audio beat errors of the Sync Toolbox's full pipeline."""
    import _synctoolbox

    pairs = corpus.version_pairs()
    return np.concatenate([sync.beat_errors(path, _synctoolbox.FEATURE_RATE, a.beats_s, b.beats_s)
                           for (a, b), path in zip(pairs, _synctoolbox.pair_paths(pairs, recordings))])


def toolbox_table(corpus: corpus_lib.Corpus, soundfonts: Sequence[Path]) -> None:
    """This project beside the Sync Toolbox, on the project's renders and on renders with each of
    ``soundfonts``."""
    import _synctoolbox

    sets = recording_sets(corpus, soundfonts)
    default = sync.default_config()
    label = f"this project (conf/sync: chroma + DLNCO, {default.rate_hz:g} Hz, silence trimmed, straight between onsets)"
    methods = {label: default,
               "this project, path as DTW found it (anchor_threshold 0)": dataclasses.replace(default,
                                                                                        anchor_threshold=0.0),
               "this project before (chroma only, 20 Hz)": dataclasses.replace(
                   sync.SyncConfig(), rate_hz=20.0, onset_weight=0.0, silence_db=0.0, soft_gamma=0.0,
                   anchor_threshold=0.0)}
    n_pairs = len(corpus.version_pairs())
    print("\n## Beside the Sync Toolbox\n")
    print(f"{corpus.config.name} corpus, test pieces {', '.join(corpus.pieces)}: {n_pairs} version pairs "
          f"(audio-audio), {len(corpus.versions)} versions against their scores (score-audio).\n")
    if len(sets) == 1:
        print(NO_SOUNDFONT)
    print("| recordings | method | audio-audio <= 50 ms (%) | <= 100 ms (%) | mean (ms) | max (ms) "
          "| score-audio <= 50 ms (%) | <= 100 ms (%) | mean (ms) | max (ms) | beats |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for label, recordings in sets.items():
        for name, config in methods.items():
            started = time.perf_counter()
            errors = sync.corpus_beat_errors(corpus, {name: config}, recordings=recordings)
            audio, score = errors[name], errors["score-audio"]
            print(f"| {label} | {name} | {_stats_cells(audio)} | {_stats_cells(score)} | {len(audio)} / {len(score)} |",
                  flush=True)
            print(f"<!-- {time.perf_counter() - started:.0f} s -->", file=sys.stderr)
        if _synctoolbox.available():
            audio = _toolbox(corpus, recordings)
            print(f"| {label} | Sync Toolbox (MrMsDTW, chroma + DLNCO, 50 Hz) | {_stats_cells(audio)} "
                  f"| – | – | – | – | {len(audio)} / – |", flush=True)
        else:
            print(f"| {label} | Sync Toolbox | not installed (`pip install synctoolbox`) | | | | | | | | |")


def accuracy_table(corpus: corpus_lib.Corpus, rate_hz: float) -> None:
    default = sync.SyncConfig(rate_hz=rate_hz)
    configs = {
        f"full resolution, soft path (gamma {default.soft_gamma:g})": default,
        "full resolution, soft path, not anchored at onsets": dataclasses.replace(default, anchor_threshold=0.0),
        "full resolution, optimal (hard) path": sync.SyncConfig(rate_hz=rate_hz, soft_gamma=0.0),
        "multiscale, soft path in every tile": sync.SyncConfig(rate_hz=rate_hz, multiscale=True, coarse_rate_hz=2.0,
                                                              band_radius_s=2.0, tile_frames=200),
        "multiscale, optimal (hard) paths": sync.SyncConfig(rate_hz=rate_hz, multiscale=True, coarse_rate_hz=2.0,
                                                           band_radius_s=2.0, tile_frames=200, soft_gamma=0.0),
        "full resolution, CENS": sync.SyncConfig(rate_hz=rate_hz, feature="cens", onset_weight=0.0),
    }
    errors = sync.corpus_beat_errors(corpus, configs, progress=True)
    print(f"\n## Synchronization beat error ({corpus.config.name} corpus, project's synthesizer, "
          f"{len(errors['linear (diagonal)'])} beats, chroma at {rate_hz:g} Hz)\n")
    print(f"DTW rows run straight between the strong onsets of A (anchor_threshold {default.anchor_threshold:g}, "
          f"anchor_window_s {default.anchor_window_s:g}) unless they say otherwise.\n")
    print("| method | mean (ms) | median (ms) | <= 50 ms (%) | <= 100 ms (%) | <= 200 ms (%) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, errs in errors.items():
        s = sync.beat_error_stats(errs)
        print(f"| {name} | {s['mean_ms']:.1f} | {s['median_ms']:.1f} | {s['within_50ms_pct']:.1f} | "
              f"{s['within_100ms_pct']:.1f} | {s['within_200ms_pct']:.1f} |")


def pairs_timing_table(corpus: corpus_lib.Corpus, n_pairs: int) -> None:
    """Wall time per pair of the command line: every pair in one process (``--pairs``) vs one process
    per pair (start, imports and compilation repeated each time), on WAV files of the corpus."""
    import soundfile

    pairs = corpus.version_pairs()[:n_pairs]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for version in {v.version_id: v for pair in pairs for v in pair}.values():
            soundfile.write(folder / f"{version.version_id}.wav", version.load_audio(), version.sample_rate)
        rows = [(f"{a.version_id}.wav", f"{b.version_id}.wav") for a, b in pairs]
        (folder / "pairs.csv").write_text("a,b\n" + "".join(f"{a},{b}\n" for a, b in rows))
        command = [sys.executable, "-m", "experiments.sync"]
        started = time.perf_counter()
        subprocess.run([*command, "--pairs", str(folder / "pairs.csv"), "--out", str(folder / "batch")],
                       check=True, capture_output=True, cwd=ROOT)
        batch = time.perf_counter() - started
        started = time.perf_counter()
        for k, (a, b) in enumerate(rows):
            subprocess.run([*command, str(folder / a), str(folder / b), "--out", str(folder / f"single{k}")],
                           check=True, capture_output=True, cwd=ROOT)
        single = time.perf_counter() - started
    minutes = sum(a.duration_s + b.duration_s for a, b in pairs) / 60.0
    print(f"\n## Many pairs per run ({len(pairs)} pairs of WAV files, {minutes:.1f} minutes of audio, "
          "each pair's CSV and PNG written)\n")
    print("| command | processes | total (s) | per pair (s) |")
    print("| --- | ---: | ---: | ---: |")
    print(f"| `python -m experiments.sync --pairs pairs.csv --out DIR` | 1 | {batch:.1f} | {batch / len(pairs):.2f} |")
    print(f"| `python -m experiments.sync A.wav B.wav --out DIR`, once per pair | {len(pairs)} | {single:.1f} | "
          f"{single / len(pairs):.2f} |")


def make_long_pair(corpus: corpus_lib.Corpus, minutes: float, workdir: Path, rate_hz: float) -> Path:
    """Render two versions of a ~``minutes``-long concatenation of chorales; save their chroma."""
    from experiments.data.score import parse_score, piece_from_score

    sources = resolve_corpus_paths(["bach/bwv*.mxl"])
    pieces, total_s = [], 0.0
    for source in sources:
        piece = piece_from_score(parse_score(source), source=source)
        pieces.append(piece)
        total_s += piece.end_q * 60.0 / pieces[0].qpm  # the concatenation plays at the first tempo
        if total_s >= minutes * 60.0:
            break
    long_piece = corpus_lib.concatenate_pieces(pieces, "long")
    config = corpus_lib.dataclasses.replace(corpus.config, performance=corpus_lib.PerformanceRanges(
        tempo_factor=(0.85, 1.15)))
    out = {}
    for k in range(2):
        version = corpus_lib.make_version(long_piece, config, k)
        audio = render_version(version)
        out[f"x{k}"] = sync.audio_chroma(audio, version.sample_rate, sync.SyncConfig(rate_hz=rate_hz))
        out[f"beats{k}"] = version.beats_s
        out[f"minutes{k}"] = version.duration_s / 60.0
    path = workdir / "long_pair.npz"
    np.savez(path, **out)
    return path


def _peak_rss_mib() -> float:
    """Peak resident memory of this process in MiB.

    Read from /proc (VmHWM), because ``getrusage``'s ru_maxrss survives
    ``exec`` on Linux and would report the parent's peak.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _align_child(npz: str, rate_hz: float, multiscale: bool) -> None:
    data = np.load(npz)
    x, y = data["x0"], data["x1"]
    factor = int(round(20.0 / rate_hz))  # features were saved at 20 Hz
    if factor > 1:
        x, y = block_mean(x, factor), block_mean(y, factor)
    # 1 Hz coarse level: a 20-minute pair is then a ~1200 x 1200 coarse table.
    config = sync.SyncConfig(rate_hz=rate_hz, multiscale=multiscale, coarse_rate_hz=1.0, tile_frames=400)
    baseline = _peak_rss_mib()
    started = time.perf_counter()
    result = sync.align(x, y, config)
    seconds = time.perf_counter() - started
    errors = sync.beat_errors(result.path, rate_hz, data["beats0"], data["beats1"])
    print(json.dumps({"seconds": seconds, "peak_rss_mib": _peak_rss_mib(),
                      "rss_before_mib": baseline, "cells": result.cells,
                      "frames": [len(x), len(y)], **sync.beat_error_stats(errors)}))


def long_pair_table(corpus, minutes: float, full_rates: list[float]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        npz = make_long_pair(corpus, minutes, Path(tmp), 20.0)
        data = np.load(npz)
        print(f"\n## A {data['minutes0']:.1f}-minute / {data['minutes1']:.1f}-minute pair "
              f"(rendered + chroma in {time.perf_counter() - started:.0f} s)\n")
        print("| mode | rate (Hz) | frames | cost cells | time (s) | peak RSS (MiB) | RSS before (MiB) "
              "| mean / median error (ms) | <= 50 ms (%) |")
        print("| --- | ---: | --- | ---: | ---: | ---: | ---: | --- | ---: |")
        runs = [(20.0, True)] + [(rate, False) for rate in full_rates]
        for rate, multiscale in runs:
            code = (f"import sys; sys.path.insert(0, {str(ROOT)!r}); sys.path.insert(0, {str(ROOT / 'benchmarks')!r});"
                    f"import sync_accuracy as b; b._align_child({str(npz)!r}, {rate}, {multiscale})")
            proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
            if proc.returncode != 0:
                print(f"| {'multiscale' if multiscale else 'full'} | {rate:g} | failed: "
                      f"{proc.stderr.strip().splitlines()[-1] if proc.stderr else proc.returncode} |")
                continue
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            mode = "multiscale" if multiscale else "full resolution"
            print(f"| {mode} | {rate:g} | {r['frames'][0]} x {r['frames'][1]} | "
                  f"{r['cells']:.3g} | {r['seconds']:.1f} | {r['peak_rss_mib']:.0f} | {r['rss_before_mib']:.0f} | "
                  f"{r['mean_ms']:.0f} / {r['median_ms']:.0f} | {r['within_50ms_pct']:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache",
                        default=os.environ.get("SDTW_RETRIEVAL_CACHE", str(ROOT / ".cache" / "sdtw-retrieval")))
    parser.add_argument("--per-collection", type=int, default=2,
                        help="test pieces of every collection (composer) of the small corpus to align")
    parser.add_argument("--full-subset", type=int, default=12)
    parser.add_argument("--rate", type=float, default=sync.SyncConfig().rate_hz,
                        help="feature rate of the variants table (Hz)")
    parser.add_argument("--long-minutes", type=float, default=20.0)
    parser.add_argument("--full-rates", default="5", help="rates (Hz) of full-resolution runs on the long pair")
    parser.add_argument("--skip-long", action="store_true")
    parser.add_argument("--timing-pairs", type=int, default=8,
                        help="pairs timed with --pairs vs one process per pair (0: skip)")
    add_soundfont_argument(parser)
    parser.add_argument("--record", action="store_true", help=RECORD_HELP)
    args = parser.parse_args()
    soundfonts = chosen_soundfonts(args)
    with recorded_output(args.record):
        small = corpus_table(args.cache, args.full_subset)
        pieces = small.subset("test", per_collection=args.per_collection)
        toolbox_table(pieces, soundfonts)
        accuracy_table(pieces, args.rate)
        if args.timing_pairs:
            pairs_timing_table(pieces, args.timing_pairs)
        if not args.skip_long:
            rates = [float(r) for r in args.full_rates.split(",") if r]
            long_pair_table(small, args.long_minutes, rates)


if __name__ == "__main__":
    main()

import dataclasses
import json
import os

import numpy as np
import pytest

from experiments import timebase
from experiments.config import compose, from_config
from experiments.data import cache, synth
from experiments.data.corpus import (CorpusConfig, build_corpus, corpus_config, corpus_root, damaged_files,
                                     load_corpus, make_version)
from experiments.data.performance import PerformanceRanges, render_version
from experiments.data.types import NoteEvent


class TestSynth:
    @pytest.mark.parametrize("name", sorted(synth.INSTRUMENTS))
    def test_note_starts_on_its_sample(self, name):
        sr = 22050
        onset_s = 0.5123
        audio = synth.render_notes([NoteEvent(onset_s, onset_s + 0.3, 64, 0)], [name], sr, duration_s=1.2)
        n0 = int(timebase.seconds_to_samples(onset_s, sr))
        assert np.all(audio[:n0] == 0.0)
        assert np.max(np.abs(audio[n0:n0 + int(0.05 * sr)])) > 1e-3

    def test_pitch_and_tuning(self):
        sr = 22050
        inst = dataclasses.replace(synth.INSTRUMENTS["organ"], partials=(1.0,))
        wave = synth.render_note(inst, 69, 1.0, sr, tuning_cents=20.0)
        spectrum = np.abs(np.fft.rfft(wave[: sr] * np.hanning(sr)))
        peak_hz = np.argmax(spectrum) * sr / sr
        assert peak_hz == pytest.approx(440.0 * 2 ** (20 / 1200), abs=1.0)

    def test_reverb_keeps_onset(self):
        rng = np.random.default_rng(0)
        signal = np.zeros(22050)
        signal[1000] = 1.0
        wet = synth.add_reverb(signal, 0.5, 22050, rng)
        # FFT convolution leaves round-off (~1e-17) only before the direct sound.
        assert np.max(np.abs(wet[:1000])) < 1e-12 and wet[1000] == pytest.approx(1.0)


class TestGroundTruth:
    def test_onsets_sit_where_the_map_says(self, tiny_corpus):
        """Detected onsets of a dry piano render match the ground-truth onsets."""
        import librosa

        ranges = PerformanceRanges(instruments=("piano",), snr_db=(200.0, 200.0), rt60_s=(0.0, 0.0))
        config = dataclasses.replace(tiny_corpus.config, performance=ranges)
        piece = tiny_corpus.pieces["bach-bwv66.6"]
        version = make_version(piece, config, 0)
        audio = render_version(version)
        sr, hop = version.sample_rate, 64
        envelope = librosa.onset.onset_strength(y=audio, sr=sr, hop_length=hop)
        detected = librosa.onset.onset_detect(onset_envelope=envelope, sr=sr, hop_length=hop,
                                              units="time", backtrack=False)
        truth = np.unique([n.onset_s for n in version.notes])
        # the score time of each onset maps to that same instant
        onsets_q = np.unique([n.onset_q for n in piece.notes])
        np.testing.assert_allclose(version.time_map.to_seconds(onsets_q), truth, atol=1e-9)
        deviation = np.min(np.abs(truth[:, None] - detected[None, :]), axis=1)
        assert np.median(deviation) < 0.012
        assert np.all(deviation < 0.03), deviation

    def test_beats_measures_theme_consistent(self, tiny_corpus):
        for version in tiny_corpus:
            piece = tiny_corpus.pieces[version.piece_id]
            assert len(version.beats_s) == len(piece.beats_q) > 0
            assert np.all(np.diff(version.beats_s) > 0)
            np.testing.assert_allclose(version.beats_s, version.time_map.to_seconds(piece.beats_q))
            np.testing.assert_allclose(version.time_map.to_quarters(version.beats_s), piece.beats_q, atol=1e-9)
            assert version.beats_s[0] == pytest.approx(version.performance.lead_in_s)
            assert 0 < version.theme_start_s < version.theme_end_s < version.duration_s
            theme = piece.theme
            assert theme.notes and all(n.part == theme.part for n in theme.notes)
            assert all(theme.start_q <= n.onset_q < theme.end_q for n in theme.notes)

    def test_tempo_and_tuning_within_ranges(self, tiny_corpus):
        ranges = tiny_corpus.config.performance
        for version in tiny_corpus:
            perf = version.performance
            assert ranges.tempo_factor[0] <= perf.tempo_factor <= ranges.tempo_factor[1]
            assert abs(perf.tuning_cents) <= ranges.tuning_cents
            assert perf.transpose in ranges.transpose_semitones

    def test_transposition_shifts_pitches(self, tiny_corpus):
        config = dataclasses.replace(tiny_corpus.config,
                                     performance=PerformanceRanges(transpose_semitones=(3,)))
        piece = tiny_corpus.pieces["bach-bwv66.6"]
        version = make_version(piece, config, 0)
        assert [n.pitch for n in version.notes] == [n.pitch + 3 for n in piece.notes]


class TestDeterminism:
    def test_same_config_same_audio(self, tiny_corpus):
        version = tiny_corpus.versions[0]
        first = render_version(version)
        second = render_version(make_version(tiny_corpus.pieces[version.piece_id], tiny_corpus.config,
                                             version.index))
        assert np.array_equal(first, second)
        assert np.array_equal(first, version.load_audio())  # the cache stores the exact samples

    def test_versions_differ(self, tiny_corpus):
        a, b = tiny_corpus.versions_of("bach-bwv66.6")[:2]
        assert a.performance != b.performance
        assert a.duration_s != b.duration_s

    def test_version_pairs_join_versions_of_one_piece_once(self, tiny_corpus):
        pairs = tiny_corpus.version_pairs()
        assert [(a.version_id, b.version_id) for a, b in pairs] == [
            (f"{piece}__v0", f"{piece}__v1") for piece in tiny_corpus.pieces]
        three = dataclasses.replace(tiny_corpus, versions=[*tiny_corpus.versions, dataclasses.replace(
            tiny_corpus.versions[0], version_id="extra")])
        assert [(a.version_id, b.version_id) for a, b in three.version_pairs()[:3]] == [
            ("bach-bwv66.6__v0", "bach-bwv66.6__v1"), ("bach-bwv66.6__v0", "extra"), ("bach-bwv66.6__v1", "extra")]


class TestCache:
    def test_second_build_loads(self, tiny_corpus, tiny_config):
        again = build_corpus(tiny_config, progress=False)
        assert again.root == tiny_corpus.root
        assert [v.version_id for v in again] == [v.version_id for v in tiny_corpus]
        assert again.pieces.keys() == tiny_corpus.pieces.keys()
        v0, w0 = tiny_corpus.versions[0], again.versions[0]
        assert v0.notes == w0.notes and v0.performance == w0.performance
        np.testing.assert_array_equal(v0.beats_s, w0.beats_s)
        assert again.summary()["versions"] == 6

    def test_key_ignores_cache_dir_but_not_content(self, tiny_config):
        assert tiny_config.cache_key() == dataclasses.replace(tiny_config, cache_dir="/elsewhere").cache_key()
        assert tiny_config.cache_key() != dataclasses.replace(tiny_config, seed=1).cache_key()

    def test_incomplete_folder_is_not_loaded(self, tmp_path):
        with pytest.raises(FileNotFoundError, match="manifest.json"):
            load_corpus(tmp_path)

    def test_interrupted_build_resumes(self, tiny_config, tmp_path):
        config = dataclasses.replace(tiny_config, cache_dir=str(tmp_path), pieces=("bach/bwv66.6",),
                                     max_measures=2)
        corpus = build_corpus(config, progress=False)
        root = corpus_root(config)
        (root / "manifest.json").unlink()
        (root / "versions" / f"{corpus.versions[1].version_id}.json").unlink()
        resumed = build_corpus(config, progress=False)
        assert [v.version_id for v in resumed] == [v.version_id for v in corpus]
        assert not list(root.rglob("*.tmp.*"))

    @pytest.mark.parametrize("damage", ["truncated wav", "deleted version json", "torn manifest"])
    def test_damaged_cache_is_rebuilt(self, damage, tiny_config, tmp_path):
        config = dataclasses.replace(tiny_config, cache_dir=str(tmp_path), pieces=("bach/bwv66.6",),
                                     max_measures=2)
        corpus = build_corpus(config, progress=False)
        root, version = corpus_root(config), corpus.versions[1]
        audio = version.load_audio()
        wav = root / "versions" / f"{version.version_id}.wav"
        if damage == "truncated wav":
            wav.write_bytes(wav.read_bytes()[: wav.stat().st_size // 10])
        elif damage == "deleted version json":
            wav.with_suffix(".json").unlink()
        else:
            (root / "manifest.json").write_text('{"format": 1, "conf')
        with pytest.warns(UserWarning, match="rebuilding what is damaged"):
            rebuilt = build_corpus(config, progress=False)
        np.testing.assert_array_equal(rebuilt.versions[1].load_audio(), audio)
        assert not damaged_files(root)

    def test_atomic_write_leaves_nothing_on_failure(self, tmp_path):
        target = tmp_path / "file.json"
        cache.write_json(target, {"ok": 1})

        def broken(tmp):
            tmp.write_text("half")
            raise RuntimeError("disk full")

        with pytest.raises(RuntimeError):
            cache.atomic_write(target, broken)
        assert json.loads(target.read_text()) == {"ok": 1}
        assert os.listdir(tmp_path) == ["file.json"]

    def test_unparseable_piece_is_skipped(self, tiny_config, tmp_path):
        broken = tmp_path / "broken.musicxml"
        broken.write_text("<score-partwise><part id='P1'><measure")
        config = dataclasses.replace(tiny_config, cache_dir=str(tmp_path / "cache"), max_measures=2,
                                     pieces=("bach/bwv66.6", str(broken)), versions_per_piece=1)
        with pytest.warns(UserWarning, match="broken.musicxml"):
            corpus = build_corpus(config, progress=False)
        assert list(corpus.pieces) == ["bach-bwv66.6"]


def test_config_from_hydra_yaml(tmp_path):
    for name in ("small", "full", "tiny"):
        config = corpus_config(name)
        assert config.name == name and config.sample_rate == 22050 and config.features.kind == "chroma_cqt"
        assert 0.6 <= config.performance.tempo_factor[0] < config.performance.tempo_factor[1] <= 1.5
        assert isinstance(config.pieces, tuple) and isinstance(config.performance.tempo_factor, tuple)


@pytest.mark.parametrize("override, message", [
    ("data.max_pieces=abc", "could not be converted to Integer"),
    ("data.tempo=2", "Key 'tempo' not in 'CorpusConfig'"),
    ("data.performance.snr=3", "Key 'snr' not in 'PerformanceRanges'"),
    ("data.features.rate=3", "Key 'rate' not in 'FeatureConfig'"),
])
def test_a_bad_key_or_value_is_refused_when_composing(override, message):
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException) as error:
        compose(["+data=small", override])
    assert message in str(error.value.__cause__ or error.value)


def test_from_config_checks_plain_mappings_too():
    from omegaconf.errors import ConfigKeyError, ValidationError

    assert from_config(CorpusConfig, {"versions_per_piece": 5}).versions_per_piece == 5
    with pytest.raises(ConfigKeyError, match="pices"):
        from_config(CorpusConfig, {"pices": ["a"]})
    with pytest.raises(ValidationError, match="sample_rate"):
        from_config(CorpusConfig, {"sample_rate": "fast"})


def test_exclusive_lock_makes_another_process_wait(tmp_path):
    import subprocess
    import sys
    import time

    from experiments.data import cache

    lock = tmp_path / "index.lock"
    waiter = [sys.executable, "-c", f"from experiments.data import cache\nwith cache.exclusive({str(lock)!r}): print('got it')"]
    with cache.exclusive(lock):
        other = subprocess.Popen(waiter, stdout=subprocess.PIPE, text=True)
        time.sleep(1.0)
        assert other.poll() is None  # still waiting for the lock
    assert other.communicate(timeout=60)[0].strip() == "got it"


class TestSplits:
    """Pieces, not recordings, are split: no test recording shares notes with training."""

    ids = [f"composer-piece{i}" for i in range(60)]

    def test_every_piece_in_exactly_one_split_whatever_the_order(self):
        from experiments.data.corpus import SplitConfig, assign_splits

        config = SplitConfig(train=0.5, val=0.1)
        splits = assign_splits(self.ids, config)
        assert set(splits) == set(self.ids) and set(splits.values()) == {"train", "val", "test"}
        counts = {name: list(splits.values()).count(name) for name in ("train", "val", "test")}
        assert counts == {"train": 30, "val": 6, "test": 24}
        assert assign_splits(self.ids[::-1], config) == splits            # deterministic, order-free
        assert assign_splits(self.ids, SplitConfig(0.5, 0.1, salt="x")) != splits

    def test_small_corpora_get_one_piece_per_split_and_too_small_ones_are_refused(self):
        from experiments.data.corpus import SplitConfig, assign_splits

        assert sorted(assign_splits(["a", "b", "c"], SplitConfig(0.45, 0.1)).values()) == ["test", "train", "val"]
        with pytest.raises(ValueError, match="at least 3 pieces"):
            assign_splits(["a", "b"], SplitConfig())
        with pytest.raises(ValueError, match="train \\+ val < 1"):
            assign_splits(self.ids, SplitConfig(train=0.8, val=0.3))

    def test_subsets_hold_their_pieces_versions_only(self, tiny_corpus):
        parts = {split: tiny_corpus.subset(split) for split in ("train", "val", "test")}
        pieces = [set(part.pieces) for part in parts.values()]
        assert set.union(*pieces) == set(tiny_corpus.pieces) and sum(map(len, pieces)) == len(tiny_corpus.pieces)
        for part in parts.values():
            assert {v.piece_id for v in part.versions} == set(part.pieces)
            assert len(part.versions) == 2 * len(part.pieces)
        assert parts["test"].splits == {p: "test" for p in parts["test"].pieces}  # not drawn again among its pieces
        assert parts["test"].subset("test").pieces.keys() == parts["test"].pieces.keys()
        with pytest.raises(ValueError, match="unknown split 'dev'"):
            tiny_corpus.subset("dev")

    def test_a_subset_per_collection_samples_every_composer(self, tiny_corpus):
        import dataclasses

        from experiments.data.corpus import collection_of

        first, second, third = tiny_corpus.pieces
        folders = {first: "bach", second: "mozart", third: "bach"}
        pieces = {p: dataclasses.replace(piece, source=f"{folders[p]}/{p}.mxl") for p, piece in tiny_corpus.pieces.items()}
        corpus = dataclasses.replace(tiny_corpus, pieces=pieces, assigned_splits={p: "test" for p in pieces})
        assert [collection_of(piece) for piece in pieces.values()] == ["bach", "mozart", "bach"]
        assert list(corpus.subset("test", per_collection=1).pieces) == [first, second]
        assert list(corpus.subset("test", per_collection=2).pieces) == [first, second, third]
        assert list(corpus.subset("test", 1, per_collection=1).pieces) == [first]

    def test_training_examples_never_read_a_test_piece(self, tiny_corpus, tiny_config):
        """The datasets compute features of train and val versions only (nothing of a test piece is cached)."""
        import dataclasses

        from experiments.training.corpus import corpus_datasets

        train, val = corpus_datasets(dataclasses.asdict(tiny_config), inputs="logfreq", model_cfg={})
        assert len(train) and len(val)
        cached = {path.stem for path in tiny_corpus.root.glob("features/logfreq-*/*.npy")}
        test_versions = {v.version_id for v in tiny_corpus.subset("test").versions}
        assert cached and not cached & test_versions

    def test_a_repeated_tune_is_left_out(self, tmp_path):
        """bwv 244.54 and 244.62 harmonize the same chorale tune: only the first is kept."""
        from experiments.data.corpus import CorpusConfig, build_corpus, theme_melody

        config = CorpusConfig(name="tunes", pieces=("bach/bwv244.54", "bach/bwv244.62", "bach/bwv66.6"),
                              versions_per_piece=1, max_measures=3, theme_measures=2, cache_dir=str(tmp_path))
        corpus = build_corpus(config, progress=False)
        assert list(corpus.pieces) == ["bach-bwv244.54", "bach-bwv66.6"]
        everything = build_corpus(dataclasses.replace(config, distinct_themes=False), progress=False)
        assert theme_melody(everything.pieces["bach-bwv244.54"]) == theme_melody(everything.pieces["bach-bwv244.62"])


def test_melody_targets_are_the_principal_voice(tiny_corpus):
    from experiments.training.corpus import target_notes

    version = tiny_corpus.versions[0]
    part = tiny_corpus.pieces[version.piece_id].theme.part
    melody = target_notes(tiny_corpus, version, "melody")
    assert melody and {note.part for note in melody} == {part}
    assert set(melody) < set(target_notes(tiny_corpus, version, "all")) == set(version.notes)
    with pytest.raises(ValueError, match="targets must be one of"):
        target_notes(tiny_corpus, version, "bass")


def test_workers_render_and_extract_what_one_process_does(tmp_path, monkeypatch):
    """Renders and features spread over spawned worker processes equal those of one process."""
    from experiments.data.corpus import CorpusConfig, build_corpus
    from experiments.features import FeatureConfig, corpus_features
    from experiments.workers import MIN_ITEMS

    def build(workers: str, folder: str):
        monkeypatch.setenv("SDTW_RETRIEVAL_WORKERS", workers)
        config = CorpusConfig(name="workers", pieces=("bach/bwv66.6", "bach/bwv1.6"), versions_per_piece=MIN_ITEMS // 2,
                              max_measures=2, theme_measures=1, cache_dir=str(tmp_path / folder))
        corpus = build_corpus(config, progress=False)
        return corpus, corpus_features(corpus, FeatureConfig(kind="chroma_stft"), progress=False)

    (one, one_chroma), (two, two_chroma) = build("1", "one"), build("2", "two")
    assert [v.version_id for v in one.versions] == [v.version_id for v in two.versions]
    for a, b in zip(one.versions, two.versions):
        np.testing.assert_array_equal(a.load_audio(), b.load_audio())
        np.testing.assert_array_equal(one_chroma[a.version_id], two_chroma[b.version_id])
    with pytest.raises(ValueError, match="SDTW_RETRIEVAL_WORKERS must be a positive integer"):
        build("0", "zero")

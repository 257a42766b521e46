"""Landmark fingerprints: hashing, the on-disk index, identification (experiments.retrieval.fingerprint)."""

import collections
import os

import numpy as np
import pytest
import scipy.signal
import scipy.stats

from experiments.data import cache
from experiments.retrieval import fingerprint as fp
from experiments.retrieval import identification


@pytest.fixture(scope="module")
def recordings(tiny_corpus):
    """Audio of the tiny corpus by version id (2 pieces x 2 versions, about 10 s each)."""
    return {v.version_id: v.load_audio() for v in tiny_corpus.versions}


@pytest.fixture
def index(tmp_path, recordings):
    """An index of the first version of each piece; the second versions stay out."""
    idx = fp.FingerprintIndex(tmp_path / "index")
    idx.add({name: ("key", fp.landmarks(audio, 22050)) for name, audio in recordings.items() if name.endswith("v0")})
    return idx


def clip_of(audio: np.ndarray, start_s: float, seconds: float, sr: int = 22050) -> np.ndarray:
    first = int(round(start_s * sr))
    return audio[first: first + int(seconds * sr)]


@pytest.mark.parametrize("start_s", [0.0, 1.234, 4.567])
def test_clean_clip_found_at_its_offset_within_one_hop(index, recordings, start_s):
    name = next(n for n in recordings if n.endswith("v0"))
    (best, *_) = index.identify(clip_of(recordings[name], start_s, 3.0), 22050)
    assert best.name == name
    assert abs(best.offset_s - start_s) <= fp.FingerprintConfig().frame_s
    assert best.confidence >= fp.DEFAULT_MIN_CONFIDENCE and 0 < best.fraction <= 1


def test_recordings_not_in_the_index_are_rejected(index, recordings):
    other_rendering = next(n for n in recordings if n.endswith("v1"))
    assert index.identify(clip_of(recordings[other_rendering], 2.0, 5.0), 22050) == []
    noise = np.random.default_rng(0).standard_normal(5 * 22050).astype(np.float32) * 0.1
    assert index.identify(noise, 22050) == []
    assert index.identify(np.zeros(22050, np.float32), 22050) == []  # silence: no landmark at all


def test_speed_change_needs_the_speed_search(index, recordings):
    name = next(n for n in recordings if n.endswith("v0"))
    faster = scipy.signal.resample_poly(clip_of(recordings[name], 1.0, 4.2), 25, 26)  # played 4% fast
    assert all(m.name != name for m in index.identify(faster, 22050))
    (best, *_) = index.identify(faster, 22050, speeds=identification.SPEED_SEARCH)
    assert best.name == name and best.speed == 1.04 and abs(best.offset_s - 1.0) <= 0.1


def test_hash_fields_round_trip():
    config = fp.FingerprintConfig()
    anchor, step, dt = np.array([0, 256, 17]), np.array([-63, 63, 0]), np.array([1, 63, 30])
    keys = fp.hash_pairs(anchor, step, dt, config)
    assert keys.dtype == np.uint32 and len(set(keys.tolist())) == 3
    np.testing.assert_array_equal(keys >> 13, anchor)
    np.testing.assert_array_equal(((keys >> 6) & 127).astype(int) - 63, step)
    np.testing.assert_array_equal(keys & 63, dt)


def test_landmarks_pair_each_peak_with_its_nearest_targets(recordings):
    config = fp.FingerprintConfig()
    found = fp.landmarks(next(iter(recordings.values())), 22050, config)
    dt, step = found.hashes & 63, ((found.hashes >> 6) & 127).astype(int) - config.max_df
    assert np.all((dt >= 1) & (dt <= config.max_dt)) and np.all(np.abs(step) <= config.max_df)
    anchors = set(zip(found.times.tolist(), (found.hashes >> 13).tolist()))  # distinct peaks used as anchors
    per_second = np.bincount([t // round(1 / config.frame_s) for t, _ in anchors])  # peaks' one-second blocks
    assert per_second.max() <= config.peaks_per_second  # the densest constellation kept
    per_anchor = collections.Counter(zip(found.times.tolist(), (found.hashes >> 13).tolist()))
    assert max(per_anchor.values()) <= config.fan_out
    seconds = found.n_frames * config.frame_s
    assert 20 < len(found.hashes) / seconds < config.peaks_per_second * config.fan_out


def brute_force_best_offsets(entries: dict, query: fp.Landmarks, tolerance: int) -> dict:
    """file -> (best windowed count, the offsets that reach it), by loops over every pair of equal hashes."""
    counts = collections.Counter()
    for name, found in entries.items():
        for h, t in zip(found.hashes.tolist(), found.times.tolist()):
            for qh, qt in zip(query.hashes.tolist(), query.times.tolist()):
                if h == qh:
                    counts[name, t - qt] += 1
    windowed = collections.defaultdict(dict)
    for (name, offset) in list(counts):
        windowed[name][offset] = sum(counts.get((name, offset + d), 0) for d in range(-tolerance, tolerance + 1))
    return {name: (max(by_offset.values()), {o for o, c in by_offset.items() if c == max(by_offset.values())})
            for name, by_offset in windowed.items()}


def test_lookup_counts_equal_brute_force(tmp_path):
    rng = np.random.default_rng(3)
    config = fp.FingerprintConfig()

    def random_landmarks(n, frames):
        return fp.Landmarks(rng.integers(0, 40, n).astype(np.uint32), np.sort(rng.integers(0, frames, n)), frames)

    entries = {f"f{i}": random_landmarks(300, 400) for i in range(3)}
    idx = fp.FingerprintIndex(tmp_path, config)
    idx.add({"f0": ("a", entries["f0"])})
    idx.add({n: ("a", entries[n]) for n in ("f1", "f2")})  # two segments
    query = random_landmarks(60, 100)
    expected = brute_force_best_offsets(entries, query, config.offset_tolerance)
    got = {m.name: m for m in idx.lookup(query, min_confidence=-np.inf)}  # chance matches too
    assert set(got) == set(expected)
    for name, (count, offsets) in expected.items():
        assert got[name].hits == count
        assert round(got[name].offset_s / config.frame_s) in offsets


def test_chance_model_is_the_poisson_tail():
    assert 10 ** fp._log10_chance(5, 0.3) == pytest.approx(scipy.stats.poisson.sf(4, 0.3))
    assert np.isfinite(fp._log10_chance(5000, 0.01)) and fp._log10_chance(5000, 0.01) < -1000


def test_index_grows_by_segments_and_survives_a_restart(tmp_path, recordings):
    names = sorted(recordings)
    found = {n: fp.landmarks(recordings[n], 22050) for n in names}
    idx = fp.FingerprintIndex(tmp_path)
    idx.add({names[0]: ("k0", found[names[0]])})
    first = sorted(tmp_path.glob("segment-*.npy"))
    stamps = [os.stat(p).st_mtime_ns for p in first]
    idx.add({names[1]: ("k1", found[names[1]])})
    assert [os.stat(p).st_mtime_ns for p in first] == stamps  # adding did not rewrite the old segment
    assert len(idx.segments) == 2 and idx.files() == {names[0]: "k0", names[1]: "k1"}

    reopened = fp.FingerprintIndex(tmp_path)
    clip = clip_of(recordings[names[1]], 1.5, 3.0)
    assert reopened.identify(clip, 22050)[0].name == names[1]
    reopened.remove([names[1]])
    assert reopened.identify(clip, 22050) == [] and names[1] not in reopened.files()
    entries_before = reopened.n_entries
    reopened.compact()
    assert len(reopened.segments) == 1 and reopened.n_entries == len(found[names[0]].hashes) < entries_before
    assert reopened.identify(clip_of(recordings[names[0]], 1.0, 3.0), 22050)[0].name == names[0]


def test_replacing_a_file_keeps_one_copy(tmp_path, recordings):
    name, audio = next(iter(recordings.items()))
    idx = fp.FingerprintIndex(tmp_path)
    idx.add({name: ("old", fp.landmarks(audio, 22050))})
    idx.add({name: ("new", fp.landmarks(audio, 22050))})
    assert idx.files() == {name: "new"} and len(idx) == 1
    assert len(idx.identify(clip_of(audio, 1.0, 3.0), 22050)) == 1


def test_many_segments_are_merged(tmp_path, recordings):
    idx = fp.FingerprintIndex(tmp_path, max_segments=2)
    for i, (name, audio) in enumerate(recordings.items()):
        idx.add({name: (str(i), fp.landmarks(audio, 22050))})
    assert len(idx.segments) <= 2 and len(idx) == len(recordings)


def test_other_settings_or_damage_are_refused(tmp_path, recordings):
    name, audio = next(iter(recordings.items()))
    fp.FingerprintIndex(tmp_path).add({name: ("k", fp.landmarks(audio, 22050))})
    with pytest.raises(fp.FingerprintIndexError, match="other settings"):
        fp.FingerprintIndex(tmp_path, fp.FingerprintConfig(fan_out=3))
    assert len(fp.FingerprintIndex(tmp_path, fp.FingerprintConfig(fan_out=3), reset=True)) == 0

    fp.FingerprintIndex(tmp_path).add({name: ("k", fp.landmarks(audio, 22050))})
    hashes = next(tmp_path.glob("segment-*.hashes.npy"))
    data = bytearray(hashes.read_bytes())
    data[-1] ^= 0xFF
    hashes.write_bytes(bytes(data))
    assert not cache.is_intact(hashes)
    with pytest.raises(fp.FingerprintIndexError, match="damaged"):
        fp.FingerprintIndex(tmp_path).identify(clip_of(audio, 1.0, 3.0), 22050)


@pytest.mark.parametrize("audio, message", [
    (np.zeros((2, 8000), np.float32), "mono"),
    (np.array([0.0, np.nan] * 4000, np.float32), "NaN"),
])
def test_bad_audio_is_refused(audio, message):
    with pytest.raises(ValueError, match=message):
        fp.landmarks(audio, 8000)


def test_bad_configs_are_refused():
    with pytest.raises(ValueError, match="max_dt"):
        fp.FingerprintConfig(max_dt=64)
    with pytest.raises(ValueError, match="n_fft"):
        fp.FingerprintConfig(n_fft=2048)


def test_robustness_evaluation_counts_every_query(tiny_corpus):
    degradations = {k: identification.DEGRADATIONS[k] for k in ("clean", "noise 10 dB SNR", "speed +5%")}
    result = identification.evaluate_identification(
        tiny_corpus, durations=(3.0,), per_recording=2, degradations=degradations,
        systems=[identification.LandmarkSystem()])
    (system,) = result.systems
    database = identification.identification_split(tiny_corpus)["database"]
    assert result.identified(system, condition="clean", search="speed 1") == (2 * len(database), 2 * len(database))
    assert result.identified(system, condition="speed +5%", search="speed 1")[0] == 0  # hashes do not survive 5%
    assert result.identified(system, condition="speed +5%", search="speed search")[0] > 0
    n_false, n_other = result.false_positives(system, search="speed 1")
    assert n_other > 0 and n_false == 0
    assert result.median_ms(system, search="speed 1") > 0


def test_compaction_changes_no_answer(tmp_path):
    rng = np.random.default_rng(5)
    entries = {f"f{i}": fp.Landmarks(rng.integers(0, 60, 200).astype(np.uint32), np.sort(rng.integers(0, 300, 200)),
                                     300) for i in range(5)}
    idx = fp.FingerprintIndex(tmp_path)
    for pair in (("f0", "f1"), ("f2",), ("f3", "f4")):
        idx.add({n: ("k", entries[n]) for n in pair})
    idx.remove(["f1"])
    times = entries["f3"].times[50:120]
    query = fp.Landmarks(entries["f3"].hashes[50:120], times - 40, int(times.max()) - 39)
    before = idx.lookup(query, min_confidence=-np.inf)
    idx.compact()
    assert len(idx.segments) == 1 and sorted(idx.files()) == ["f0", "f2", "f3", "f4"]
    assert idx.lookup(query, min_confidence=-np.inf) == before
    assert before[0].name == "f3" and round(before[0].offset_s / idx.config.frame_s) == 40


def test_the_rarest_hashes_are_read_within_the_budget(tmp_path):
    common = fp.Landmarks(np.full(30, 7, np.uint32), np.arange(30), 40)
    rare = fp.Landmarks(np.array([1, 2], np.uint32), np.array([3, 9]), 40)
    idx = fp.FingerprintIndex(tmp_path)
    idx.add({"a": ("k", common)})
    idx.add({"b": ("k", common), "c": ("k", rare)})  # hash 7: 60 entries over two segments; hashes 1, 2: one each
    query = fp.Landmarks(np.array([7, 1, 2], np.uint32), np.array([0, 3, 9]), 10)
    found = lambda budget: {m.name for m in idx.lookup(query, min_confidence=-np.inf, max_postings=budget)}  # noqa: E731
    assert found(62) == {"a", "b", "c"}
    assert found(61) == {"c"}  # hash 7 no longer fits after the two rare ones
    assert found(1) == {"c"} and found(0) == set()
    np.testing.assert_array_equal(fp._over_budget(np.array([5, 1, 3]), 4), [True, False, False])

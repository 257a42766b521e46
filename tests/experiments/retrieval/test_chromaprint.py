"""Chromaprint reference: the in-process library and fpcalc agree, and the sliding search finds a clip."""

import shutil

import numpy as np
import pytest

from experiments.retrieval import chromaprint

needs_library = pytest.mark.skipif(chromaprint._library() is None, reason="libchromaprint not installed")
SR = 22050


def _melody(seconds: float, seed: int) -> np.ndarray:
    """Random notes of 0.25 s with a few partials: enough chroma change for distinct words."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(SR * 0.25)) / SR
    notes = [sum(np.sin(2 * np.pi * k * 220 * 2 ** (p / 12) * t) / k for k in (1, 2, 3))
             for p in rng.integers(0, 24, int(seconds / 0.25))]
    return (0.2 * np.concatenate(notes)).astype(np.float32)


@needs_library
@pytest.mark.skipif(shutil.which("fpcalc") is None, reason="fpcalc not installed")
def test_library_and_fpcalc_give_the_same_words():
    audio = _melody(6.0, seed=0)
    words = chromaprint.raw_fingerprint(audio, SR)
    assert len(words) > 20
    np.testing.assert_array_equal(words, chromaprint._fpcalc_fingerprint(audio, SR))


@needs_library
def test_a_clip_is_found_in_its_recording_at_its_offset():
    recordings = {name: _melody(20.0, seed) for seed, name in enumerate(["a", "b", "c"])}
    index = chromaprint.ChromaprintIndex({n: chromaprint.raw_fingerprint(a, SR) for n, a in recordings.items()})
    clip = recordings["b"][8 * SR: 13 * SR]
    (name, offset, error), *others = index.best_offsets(chromaprint.raw_fingerprint(clip, SR))
    assert name == "b" and abs(offset - 8.0) < 0.5
    assert error < 0.2 < min(e for _, _, e in others)


@needs_library
def test_a_clip_too_short_for_a_word_gives_none():
    assert chromaprint.raw_fingerprint(np.zeros(100, np.float32), SR).size == 0

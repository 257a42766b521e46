"""Chromaprint (the fingerprinter of AcoustID) as a reference, through its ``fpcalc`` tool.

Chromaprint hashes 12 chroma bands, seen through 16 learned filters, into one
32-bit word per 4096/3 samples at 11025 Hz (about 8 words a second). It is
made to identify whole tracks; here a clip's words are slid along each
recording's and the position with the lowest bit error rate wins. Install the
tool with ``apt-get install libchromaprint-tools`` (``fpcalc``); without it
:func:`available` is False and the report leaves the comparison out.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Mapping

import numpy as np

__all__ = ["WORD_S", "ChromaprintIndex", "available", "raw_fingerprint"]

WORD_S = 4096 / 3 / 11025  # seconds per fingerprint word
_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], np.uint8)


def available() -> bool:
    return shutil.which("fpcalc") is not None


def version() -> str:
    words = subprocess.run(["fpcalc", "-version"], capture_output=True, text=True).stdout.split()
    return words[words.index("version") + 1] if "version" in words[:-1] else "?"


def raw_fingerprint(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """``(W,)`` uint32 words of ``audio`` ``(samples,)``; empty when the clip is too short for one."""
    import soundfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "clip.wav"
        soundfile.write(path, np.clip(audio, -1.0, 1.0), sample_rate, subtype="PCM_16")
        done = subprocess.run(["fpcalc", "-raw", "-json", "-length", "0", str(path)], capture_output=True, text=True)
    try:  # fpcalc may complain about the end of the file and still print the fingerprint
        return np.asarray(json.loads(done.stdout)["fingerprint"], np.uint32)
    except (json.JSONDecodeError, KeyError):
        return np.zeros(0, np.uint32)


class ChromaprintIndex:
    """Recordings' raw fingerprints, searched by sliding a clip's words along each (exhaustive)."""

    def __init__(self, fingerprints: Mapping[str, np.ndarray]):
        self.fingerprints = dict(fingerprints)

    def best_offsets(self, words: np.ndarray) -> list[tuple[str, float, float]]:
        """(name, offset in seconds, bit error rate) of every recording at least as long as the clip,
        lowest error first."""
        found = []
        if len(words) == 0:
            return found
        for name, reference in self.fingerprints.items():
            if len(reference) < len(words):
                continue
            windows = np.lib.stride_tricks.sliding_window_view(reference, len(words))  # (offsets, W)
            errors = _POPCOUNT[(windows ^ words).view(np.uint8)].reshape(len(windows), -1).sum(axis=1)
            best = int(np.argmin(errors))
            found.append((name, best * WORD_S, float(errors[best]) / (32 * len(words))))
        return sorted(found, key=lambda item: item[2])

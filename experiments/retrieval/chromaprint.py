"""Chromaprint (the fingerprinter of AcoustID) as a reference.

Chromaprint hashes 12 chroma bands, seen through 16 learned filters, into one
32-bit word per 4096/3 samples at 11025 Hz (about 8 words a second). It is
made to identify whole tracks; here a clip's words are slid along each
recording's and the position with the lowest bit error rate wins.

The library is called in process through ``ctypes`` where ``libchromaprint`` is
found, else its ``fpcalc`` tool on a WAV file (the same words, about 50 ms more
per clip for the process and the file). Install both with ``apt-get install
libchromaprint-tools``; without either :func:`available` is False and the
report leaves the comparison out.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
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
_DEFAULT_ALGORITHM = 1  # CHROMAPRINT_ALGORITHM_DEFAULT (TEST2), fpcalc's


@functools.cache
def _library() -> ctypes.CDLL | None:
    """``libchromaprint`` with the signatures used here, or None where it is not installed."""
    name = ctypes.util.find_library("chromaprint")
    try:
        lib = ctypes.CDLL(name or "libchromaprint.so.1")
    except OSError:
        return None
    lib.chromaprint_get_version.restype = ctypes.c_char_p
    lib.chromaprint_new.restype = ctypes.c_void_p
    lib.chromaprint_new.argtypes = [ctypes.c_int]
    lib.chromaprint_free.argtypes = [ctypes.c_void_p]
    lib.chromaprint_start.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
    lib.chromaprint_feed.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_int16), ctypes.c_int]
    lib.chromaprint_finish.argtypes = [ctypes.c_void_p]
    lib.chromaprint_get_raw_fingerprint.argtypes = [
        ctypes.c_void_p, ctypes.POINTER(ctypes.POINTER(ctypes.c_uint32)), ctypes.POINTER(ctypes.c_int)]
    lib.chromaprint_dealloc.argtypes = [ctypes.c_void_p]
    return lib


def available() -> bool:
    return _library() is not None or shutil.which("fpcalc") is not None


def interface() -> str:
    """How fingerprints are computed here: ``"libchromaprint"`` (in process) or ``"fpcalc"``."""
    return "libchromaprint" if _library() is not None else "fpcalc"


def version() -> str:
    if _library() is not None:
        return _library().chromaprint_get_version().decode()
    words = subprocess.run(["fpcalc", "-version"], capture_output=True, text=True).stdout.split()
    return words[words.index("version") + 1] if "version" in words[:-1] else "?"


def _pcm16(audio: np.ndarray) -> np.ndarray:
    """Samples as 16-bit PCM, rounded as a WAV writer rounds them."""
    return np.round(np.clip(audio, -1.0, 1.0) * 32767).astype(np.int16)


def raw_fingerprint(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """``(W,)`` uint32 words of ``audio`` ``(samples,)``; empty when the clip is too short for one."""
    lib = _library()
    if lib is None:
        return _fpcalc_fingerprint(audio, sample_rate)
    samples = np.ascontiguousarray(_pcm16(audio))
    context = lib.chromaprint_new(_DEFAULT_ALGORITHM)
    try:
        words, size = ctypes.POINTER(ctypes.c_uint32)(), ctypes.c_int()
        if not (lib.chromaprint_start(context, sample_rate, 1)
                and lib.chromaprint_feed(context, samples.ctypes.data_as(ctypes.POINTER(ctypes.c_int16)), len(samples))
                and lib.chromaprint_finish(context)
                and lib.chromaprint_get_raw_fingerprint(context, ctypes.byref(words), ctypes.byref(size))):
            return np.zeros(0, np.uint32)
        try:
            return np.ctypeslib.as_array(words, (size.value,)).copy() if size.value else np.zeros(0, np.uint32)
        finally:
            lib.chromaprint_dealloc(words)
    finally:
        lib.chromaprint_free(context)


def _fpcalc_fingerprint(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """:func:`raw_fingerprint` through the ``fpcalc`` tool and a WAV file."""
    import soundfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "clip.wav"
        soundfile.write(path, _pcm16(audio), sample_rate, subtype="PCM_16")
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

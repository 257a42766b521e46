"""Atomic writes and config hashing for on-disk caches.

Every cache file is written to a temporary name in the same folder and then
renamed over the final name (``os.replace`` is atomic on POSIX and Windows),
so an interrupted run never leaves a half-written file under a final name.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

__all__ = ["atomic_write", "config_hash", "read_json", "write_json", "write_wav"]


def config_hash(payload: Any, length: int = 12) -> str:
    """Short SHA-1 of a JSON-serialisable payload (key order does not matter)."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=_jsonable)
    return hashlib.sha1(text.encode()).hexdigest()[:length]


def _jsonable(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` then rename ``tmp_path`` to ``path``.

    The temporary file lives in the destination folder (same file system) and
    is removed if ``write`` fails.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Keep the final suffix: some writers (np.save, soundfile) choose the format by it.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json(path: str | Path, payload: Any) -> Path:
    """Atomically write ``payload`` as JSON."""
    def write(tmp: Path) -> None:
        tmp.write_text(json.dumps(payload, default=_jsonable, separators=(",", ":")))

    return atomic_write(path, write)


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())


def write_wav(path: str | Path, audio: np.ndarray, sample_rate: int) -> Path:
    """Atomically write mono float32 WAV (lossless for float32 samples)."""
    import soundfile

    def write(tmp: Path) -> None:
        soundfile.write(str(tmp), np.asarray(audio, dtype=np.float32), int(sample_rate),
                        subtype="FLOAT", format="WAV")

    return atomic_write(path, write)

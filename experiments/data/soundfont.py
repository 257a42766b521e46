"""Render a version's notes with a General-MIDI SoundFont (FluidSynth), for evaluation on sounds
the project's own synthesizer did not make.

The version keeps its performance (note times, velocities, transposition) and so its exact
ground truth; only the sound changes: sampled instruments with their own attacks, release
tails, room and chorus effects. Each part plays the GM program closest to its preset
(:data:`GM_PROGRAMS`). The MIDI file ends ``tail_s`` after the last note-off and FluidSynth
renders until every voice has died away, so release tails ring out.

Optional: needs the ``fluidsynth`` program and a ``.sf2``/``.sf3`` file (Debian/Ubuntu:
``apt-get install fluidsynth fluid-soundfont-gm``, and for more sounds ``musescore-general-soundfont-small
timgm6mb-soundfont``; or ``$SDTW_SOUNDFONT``). :func:`find_soundfont` returns None without them,
and callers skip these renders; :func:`find_soundfonts` lists every one installed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np

from experiments.data.types import NoteEvent, Version

__all__ = ["GM_PROGRAMS", "find_soundfont", "find_soundfonts", "midi_bytes", "render_soundfont", "soundfont_version_audio"]

# FluidR3 first: the synchronization defaults were chosen on its renders of train pieces. The others
# (Debian's MuseScore General and TimGM6mb) are sounds no setting was chosen on.
SOUNDFONT_PATHS = ("/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/soundfonts/FluidR3_GM.sf2",
                   "/usr/share/sounds/sf2/default-GM.sf2", "/usr/share/soundfonts/default.sf2",
                   "/usr/share/sounds/sf3/MuseScore_General.sf3", "/usr/share/sounds/sf2/MuseScore_General.sf2",
                   "/usr/share/sounds/sf2/TimGM6mb.sf2")
# Synthesizer preset -> General-MIDI program (0-based): grand piano, nylon guitar, string ensemble,
# church organ, flute, clarinet, brass section.
GM_PROGRAMS = {"piano": 0, "guitar": 24, "strings": 48, "organ": 19, "flute": 73, "clarinet": 71, "brass": 61}
_TICKS_PER_QUARTER = 500
_MICROSECONDS_PER_QUARTER = 500_000  # with 500 ticks a quarter: one tick is one millisecond
_DRUM_CHANNEL = 9


def find_soundfonts() -> list[Path]:
    """Every General-MIDI SoundFont installed, if ``fluidsynth`` is: those in ``$SDTW_SOUNDFONT``
    (paths separated by ``os.pathsep``), then those at usual places, each file once (links resolved)."""
    if shutil.which("fluidsynth") is None:
        return []
    candidates = [*os.environ.get("SDTW_SOUNDFONT", "").split(os.pathsep), *SOUNDFONT_PATHS]
    found = [Path(c).resolve() for c in candidates if c and Path(c).is_file()]
    return list(dict.fromkeys(found))


def find_soundfont() -> Path | None:
    """The first of :func:`find_soundfonts` (``$SDTW_SOUNDFONT``, else FluidR3), or None."""
    return next(iter(find_soundfonts()), None)


def _varlen(value: int) -> bytes:
    """MIDI variable-length quantity."""
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def midi_bytes(notes: Sequence[NoteEvent], programs: Sequence[int], *, tail_s: float = 3.0) -> bytes:
    """A one-track Standard MIDI File of ``notes`` at their times (1 ms resolution).

    Args:
      notes: the notes; ``part`` picks the channel (channel 9, GM drums, is skipped) and
        ``velocity`` in (0, 1] the MIDI velocity.
      programs: GM program of each part.
      tail_s: silence after the last note-off, in seconds (release tails ring into it).
    """
    channels = [c for c in range(16) if c != _DRUM_CHANNEL]
    if len(programs) > len(channels):
        raise ValueError(f"{len(programs)} parts: a MIDI file has {len(channels)} melodic channels")
    events = [(0, 0, bytes([0xC0 | channels[part], program])) for part, program in enumerate(programs)]
    for note in notes:
        channel, pitch = channels[note.part], int(np.clip(note.pitch, 0, 127))
        velocity = int(np.clip(round(127 * float(note.velocity) ** 0.5), 1, 127))  # amplitude -> MIDI velocity
        start, stop = round(note.onset_s * 1000), max(round(note.offset_s * 1000), round(note.onset_s * 1000) + 1)
        events += [(start, 2, bytes([0x90 | channel, pitch, velocity])), (stop, 1, bytes([0x80 | channel, pitch, 0]))]
    end = max((t for t, _, _ in events), default=0) + round(tail_s * 1000)
    events.sort(key=lambda e: (e[0], e[1]))  # at one instant: note-offs before note-ons
    track = bytearray(b"\x00\xff\x51\x03" + _MICROSECONDS_PER_QUARTER.to_bytes(3, "big"))
    now = 0
    for time_ms, _, message in events:
        track += _varlen(time_ms - now) + message
        now = time_ms
    track += _varlen(end - now) + b"\xff\x2f\x00"
    header = b"MThd" + (6).to_bytes(4, "big") + (0).to_bytes(2, "big") + (1).to_bytes(2, "big")
    return header + _TICKS_PER_QUARTER.to_bytes(2, "big") + b"MTrk" + len(track).to_bytes(4, "big") + bytes(track)


def render_soundfont(notes: Sequence[NoteEvent], programs: Sequence[int], sample_rate: int, soundfont: Path,
                     *, tail_s: float = 3.0, gain: float = 0.5) -> np.ndarray:
    """Audio ``(n,)`` float32 of ``notes`` rendered by FluidSynth with ``soundfont`` (reverb and chorus on)."""
    import soundfile

    with tempfile.TemporaryDirectory() as folder:
        midi, wav = Path(folder, "notes.mid"), Path(folder, "notes.wav")
        midi.write_bytes(midi_bytes(notes, programs, tail_s=tail_s))
        subprocess.run(["fluidsynth", "-ni", "-q", "-g", str(gain), "-r", str(sample_rate), "-F", str(wav),
                        str(soundfont), str(midi)], check=True, capture_output=True, timeout=600)
        audio, rate = soundfile.read(wav, dtype="float32", always_2d=True)
    if rate != sample_rate:
        raise RuntimeError(f"fluidsynth wrote {rate} Hz instead of {sample_rate} Hz")
    mono = audio.mean(axis=1)
    return mono / max(float(np.max(np.abs(mono))), 1e-9) * 0.9


def soundfont_version_audio(version: Version, soundfont: Path, cache_dir: Path, *, tail_s: float = 3.0) -> np.ndarray:
    """The SoundFont render of ``version`` (cached as float32 WAV in ``cache_dir``; same sample rate)."""
    import soundfile

    key = hashlib.sha1(f"{soundfont.resolve()}:{soundfont.stat().st_size}:{tail_s}".encode()).hexdigest()[:10]
    path = Path(cache_dir) / f"{version.version_id}-{key}.wav"
    if path.exists():
        return soundfile.read(path, dtype="float32")[0]
    programs = [GM_PROGRAMS.get(name, 0) for name in version.performance.instruments]
    audio = render_soundfont(version.notes, programs, version.sample_rate, soundfont, tail_s=tail_s)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial.wav")
    soundfile.write(partial, audio, version.sample_rate, subtype="FLOAT")
    partial.replace(path)
    return audio

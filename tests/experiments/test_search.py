"""Searching a folder of the user's own recordings (experiments.search)."""

import csv
import shutil

import numpy as np
import pytest
import soundfile

from experiments import search


@pytest.fixture(scope="module")
def music_folder(tiny_corpus, tmp_path_factory):
    """The tiny corpus's recordings as a plain folder, plus a corrupt file and a 6 s query."""
    folder = tmp_path_factory.mktemp("music")
    for version in tiny_corpus.versions:
        shutil.copy(version.audio_path, folder / f"{version.version_id}.wav")
    (folder / "broken.wav").write_bytes(b"not audio at all")
    first = tiny_corpus.versions[0]
    query = folder.parent / "query.wav"
    audio = first.load_audio()
    soundfile.write(query, audio[: 6 * first.sample_rate], first.sample_rate)
    return folder, query, first.version_id


def test_matching_finds_the_recording_and_writes_a_csv(music_folder, tmp_path, capsys):
    folder, query, expected = music_folder
    out = tmp_path / "ranked.csv"
    assert search.main(["--database", str(folder), "--query", str(query), "--out", str(out)]) == 0
    rows = list(csv.DictReader(open(out)))
    assert rows[0]["file"] == f"{expected}.wav"
    assert float(rows[0]["start_s"]) < 2.0
    assert "broken.wav" in capsys.readouterr().err  # skipped and listed
    assert (folder / ".sdtw-search" / "features").is_dir()  # cached for the next search


def test_bad_input_gets_a_message_not_a_traceback(music_folder, tmp_path, capsys):
    folder, query, _ = music_folder
    empty = tmp_path / "empty"
    empty.mkdir()
    assert search.main(["--database", str(empty), "--query", str(query)]) == 2
    assert "holds no audio file" in capsys.readouterr().err
    silent = tmp_path / "silent.wav"
    soundfile.write(silent, np.zeros(22050 * 3, np.float32), 22050)
    assert search.main(["--database", str(folder), "--query", str(silent)]) == 2
    assert "silent" in capsys.readouterr().err
    long_query = tmp_path / "long.wav"
    soundfile.write(long_query, np.random.default_rng(0).standard_normal(22050 * 200).astype(np.float32) * 0.1, 22050)
    assert search.main(["--database", str(folder), "--query", str(long_query)]) == 2
    assert "longer than every database recording" in capsys.readouterr().err


def test_shingles_find_the_recording(tiny_corpus, tmp_path):
    folder = tmp_path / "long"
    folder.mkdir()
    for version in tiny_corpus.versions:  # three times over: longer than a 20 s shingle
        audio = np.tile(version.load_audio(), 3)
        soundfile.write(folder / f"{version.version_id}.wav", audio, version.sample_rate)
    first = tiny_corpus.versions[0]
    query = tmp_path / "query.wav"
    soundfile.write(query, np.tile(first.load_audio(), 2)[: 25 * first.sample_rate], first.sample_rate)
    hits = search.run(folder, query, method="shingles", out=tmp_path / "ranked.csv")
    assert hits[0].item_id == f"{first.version_id}.wav"
    assert any(p.suffix == ".hnsw" for p in (folder / ".sdtw-search").iterdir())  # the index is cached
    again = search.run(folder, query, method="shingles", out=tmp_path / "again.csv")
    assert [h.item_id for h in again] == [h.item_id for h in hits]


def test_too_short_recordings_for_shingles_get_a_message(music_folder, tmp_path, capsys):
    folder, query, _ = music_folder
    assert search.main(["--database", str(folder), "--query", str(query), "--method", "shingles"]) == 2
    assert "use --method matching" in capsys.readouterr().err

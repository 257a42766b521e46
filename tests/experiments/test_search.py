"""Searching a folder of the user's own recordings (experiments.search)."""

import csv
import shutil

import numpy as np
import pytest
import soundfile

from experiments import search
from experiments.data import cache


@pytest.fixture(autouse=True)
def user_cache(tmp_path, monkeypatch):
    """Caches go to $XDG_CACHE_HOME/sdtw-retrieval/search/, here a fresh folder per test."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg" / "sdtw-retrieval" / "search"


@pytest.fixture(scope="module")
def music_folder(tiny_corpus, tmp_path_factory):
    """The tiny corpus's recordings as a plain folder, plus a corrupt file and a 6 s query."""
    folder = tmp_path_factory.mktemp("music")
    for version in tiny_corpus.versions:
        shutil.copy(version.audio_path, folder / f"{version.version_id}.wav")
    (folder / "broken.wav").write_bytes(b"not audio at all")
    whole = (folder / f"{tiny_corpus.versions[1].version_id}.wav").read_bytes()
    (folder / "cut.wav").write_bytes(whole[: len(whole) // 2])  # a copy interrupted half way
    first = tiny_corpus.versions[0]
    query = folder.parent / "query.wav"
    audio = first.load_audio()
    soundfile.write(query, audio[: 6 * first.sample_rate], first.sample_rate)
    return folder, query, first.version_id


def test_matching_finds_the_recording_and_writes_a_csv(music_folder, tmp_path, capsys, user_cache):
    folder, query, expected = music_folder
    out = tmp_path / "ranked.csv"
    assert search.main(["--database", str(folder), "--query", str(query), "--out", str(out),
                        "--method", "matching"]) == 0
    rows = list(csv.DictReader(open(out)))
    assert rows[0]["file"] == f"{expected}.wav"
    assert float(rows[0]["start_s"]) < 2.0
    err = capsys.readouterr().err
    assert "broken.wav" in err and "cut.wav" in err and "truncated" in err  # skipped and listed
    assert "cut.wav" not in {r["file"] for r in rows}
    (cached,) = user_cache.iterdir()  # cached for the next search, outside the music folder
    assert (cached / "features").is_dir() and not (folder / ".sdtw-search").exists()


def test_damaged_cache_files_are_computed_again(music_folder, tmp_path, user_cache):
    folder, query, _ = music_folder
    first = search.run(folder, query, method="matching", out=tmp_path / "first.csv")
    (features,) = user_cache.glob("*/features")
    for npy in features.glob("*.npy"):
        data = bytearray(npy.read_bytes())
        data[-8:] = b"\xff" * 8  # flipped bytes in the last frame: np.load would not notice
        npy.write_bytes(bytes(data))
    again = search.run(folder, query, method="matching", out=tmp_path / "again.csv")
    assert [(h.item_id, h.start_s, h.distance) for h in again] == [(h.item_id, h.start_s, h.distance) for h in first]
    assert all(cache.is_intact(npy) for npy in features.glob("*.npy"))


def test_own_cache_folder(music_folder, tmp_path):
    folder, query, _ = music_folder
    assert search.main(["--database", str(folder), "--query", str(query), "--out", str(tmp_path / "r.csv"),
                        "--cache", str(tmp_path / "mine"), "--method", "matching"]) == 0
    assert list((tmp_path / "mine" / "features").glob("*.npy"))


@pytest.mark.parametrize("case, expected", [
    ("corrupt midi", "cannot use the query: cannot parse score"),
    ("note-less midi", "cannot use the query: score has no pitched notes"),
    ("--top 0", "--top: must be > 0"),
    ("database is a file", "is a file; give the folder"),
])
def test_bad_input_is_one_line_and_exit_2(case, expected, music_folder, tmp_path, capsys):
    import music21

    folder, query, _ = music_folder
    args = ["--database", str(folder), "--query", str(query), "--out", str(tmp_path / "r.csv")]
    if case == "corrupt midi":
        (tmp_path / "q.mid").write_bytes(b"MThd\x00\x00\x00\x06garbage")
        args[3] = str(tmp_path / "q.mid")
    elif case == "note-less midi":
        empty = music21.stream.Score([music21.stream.Part([music21.note.Rest(quarterLength=4)])])
        empty.write("midi", fp=str(tmp_path / "q.mid"))
        args[3] = str(tmp_path / "q.mid")
    elif case == "--top 0":
        args += ["--top", "0"]
    else:
        args[1] = str(query)
    try:
        code = search.main(args)
    except SystemExit as exit_info:  # argparse's own refusal
        code = exit_info.code
    err = capsys.readouterr().err
    assert code == 2 and expected in err and "Traceback" not in err
    assert not (tmp_path / "r.csv").exists()


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
    hits = search.run(folder, query, method="shingles", out=tmp_path / "ranked.csv", cache_dir=tmp_path / "c")
    assert hits[0].item_id == f"{first.version_id}.wav"
    (index,) = (tmp_path / "c").glob("*.hnsw")  # the index is cached
    index.write_bytes(index.read_bytes()[:100])  # ... and when damaged, built again
    again = search.run(folder, query, method="shingles", out=tmp_path / "again.csv", cache_dir=tmp_path / "c")
    assert [h.item_id for h in again] == [h.item_id for h in hits] and cache.is_intact(index)


def test_too_short_recordings_for_shingles_get_a_message(music_folder, tmp_path, capsys):
    folder, query, _ = music_folder
    assert search.main(["--database", str(folder), "--query", str(query), "--method", "shingles"]) == 2
    assert "use --method matching" in capsys.readouterr().err


def write_clip(version, start_s: float, seconds: float, path):
    audio = version.load_audio()
    first = int(start_s * version.sample_rate)
    soundfile.write(path, audio[first: first + int(seconds * version.sample_rate)], version.sample_rate)
    return path


def test_fingerprint_finds_the_recording_and_the_clip_offset(music_folder, tiny_corpus, tmp_path, capsys):
    folder, _, _ = music_folder
    version = tiny_corpus.versions[1]
    clip = write_clip(version, 2.5, 4.0, tmp_path / "clip.wav")
    out = tmp_path / "ranked.csv"
    assert search.main(["--database", str(folder), "--query", str(clip), "--out", str(out),
                        "--method", "fingerprint"]) == 0
    rows = list(csv.DictReader(open(out)))
    assert list(rows[0]) == ["rank", "file", "start_s", "end_s", "distance", "confidence"]
    assert rows[0]["file"] == f"{version.version_id}.wav" and len(rows) == 1  # not the other rendering
    assert abs(float(rows[0]["start_s"]) - 2.5) <= 0.032 and abs(float(rows[0]["end_s"]) - 6.5) <= 0.05
    assert float(rows[0]["confidence"]) >= 5 and 0 <= float(rows[0]["distance"]) < 1
    assert "confidence" in capsys.readouterr().out
    # auto picks the fingerprint for the same clip
    assert search.run(folder, clip, out=tmp_path / "auto.csv")[0].confidence is not None


def test_a_clip_of_another_recording_gives_no_fingerprint_match(tiny_corpus, tmp_path, capsys):
    folder = tmp_path / "one"
    folder.mkdir()
    first, other_rendering = tiny_corpus.versions[0], tiny_corpus.versions[1]
    assert first.piece_id == other_rendering.piece_id
    write_clip(first, 0.0, first.duration_s, folder / "first.wav")
    clip = write_clip(other_rendering, 1.0, 5.0, tmp_path / "clip.wav")
    out = tmp_path / "ranked.csv"
    assert search.main(["--database", str(folder), "--query", str(clip), "--out", str(out),
                        "--method", "fingerprint"]) == 0
    assert open(out).read().strip() == "rank,file,start_s,end_s,distance,confidence"  # header only
    assert "no recording in" in capsys.readouterr().out
    hits = search.run(folder, clip, method="auto", out=tmp_path / "auto.csv")  # auto: then audio matching
    assert hits and hits[0].confidence is None and hits[0].item_id == "first.wav"
    assert "searching for the same music" in capsys.readouterr().err


def test_the_fingerprint_index_follows_the_folder(tiny_corpus, tmp_path):
    folder = tmp_path / "music"
    folder.mkdir()
    a, b = tiny_corpus.versions[0], tiny_corpus.versions[2]
    write_clip(a, 0.0, a.duration_s, folder / "a.wav")
    clip_b = write_clip(b, 1.0, 4.0, tmp_path / "clip_b.wav")
    assert search.run(folder, clip_b, method="fingerprint", out=tmp_path / "r.csv", cache_dir=tmp_path / "c") == []
    (segment,) = (tmp_path / "c" / "fingerprints").glob("segment-*.hashes.npy")
    stamp = segment.stat().st_mtime_ns
    write_clip(b, 0.0, b.duration_s, folder / "b.wav")  # a new file: one more segment, the old one untouched
    hits = search.run(folder, clip_b, method="fingerprint", out=tmp_path / "r.csv", cache_dir=tmp_path / "c")
    assert [h.item_id for h in hits] == ["b.wav"] and segment.stat().st_mtime_ns == stamp
    assert len(list((tmp_path / "c" / "fingerprints").glob("segment-*.hashes.npy"))) == 2
    (folder / "b.wav").unlink()  # a removed file is no longer found
    assert search.run(folder, clip_b, method="fingerprint", out=tmp_path / "r.csv", cache_dir=tmp_path / "c") == []


def test_a_score_cannot_be_fingerprinted(music_folder, tmp_path, capsys):
    import music21

    folder, _, _ = music_folder
    score = music21.stream.Score([music21.stream.Part([music21.note.Note(p, quarterLength=4) for p in "CDEF"])])
    score.write("midi", fp=str(tmp_path / "q.mid"))
    assert search.main(["--database", str(folder), "--query", str(tmp_path / "q.mid"), "--method", "fingerprint"]) == 2
    assert "cannot be fingerprinted" in capsys.readouterr().err



def write_theme_midi(piece, path) -> None:
    """The theme of ``piece`` (its notes, at the score's tempo) as a MIDI file, as a user would have it."""
    import music21

    part = music21.stream.Part([music21.tempo.MetronomeMark(number=piece.qpm)])
    for note in piece.theme.notes:
        event = music21.note.Note(note.pitch, quarterLength=note.offset_q - note.onset_q)
        part.insert(note.onset_q - piece.theme.start_q + 0.0, event)
    music21.stream.Score([part]).write("midi", fp=str(path))


@pytest.mark.parametrize("chroma", ["standard", "enhanced"])
def test_theme_search_ranks_the_pieces_recordings_first(music_folder, tiny_corpus, tmp_path, chroma, capsys):
    folder, _, _ = music_folder
    piece = tiny_corpus.pieces["bach-bwv1.6"]
    query = tmp_path / "theme.mid"
    write_theme_midi(piece, query)
    out = tmp_path / "ranked.csv"
    assert search.main(["--database", str(folder), "--query", str(query), "--method", "theme", "--chroma", chroma,
                        "--top", "2", "--out", str(out)]) == 0
    rows = list(csv.DictReader(open(out)))
    readable = {f"{v.version_id}.wav" for v in tiny_corpus.versions}
    assert {row["file"] for row in rows} == readable  # every recording, each with its best match
    assert [float(r["distance"]) for r in rows] == sorted(float(r["distance"]) for r in rows)
    assert rows[0]["file"].startswith("bach-bwv1.6__")
    version = tiny_corpus.version(rows[0]["file"][:-4])
    assert float(rows[0]["start_s"]) < version.theme_end_s and float(rows[0]["end_s"]) > version.theme_start_s
    assert capsys.readouterr().out.count(" s - ") == 2  # --top: printed hits


def test_theme_search_without_a_trained_network_names_the_command(music_folder, tmp_path, monkeypatch, capsys):
    folder, query, _ = music_folder
    monkeypatch.chdir(tmp_path)  # no reports/ or logs/ here
    assert search.main(["--database", str(folder), "--query", str(query), "--method", "theme",
                        "--chroma", "dnn"]) == 2
    err = capsys.readouterr().err
    assert "python -m experiments.train experiment=ctc_chroma" in err and len(err.strip().splitlines()) == 1


def test_theme_search_with_a_trained_network(music_folder, tiny_corpus, tmp_path):
    """--checkpoint: the chroma CNN of a run folder (a two-step tiny run: only that it loads and ranks)."""
    from tests.experiments.train_helpers import compose_train

    from experiments.train import train

    run = tmp_path / "run"
    cfg = compose_train(run, ["logger=none", "debug=smoke", "trainer.progress=false", "experiment=ctc_chroma",
                              "data=tiny", "data.max_measures=5", "data.max_pieces=null",
                              f"data.cache_dir={tiny_corpus.config.cache_dir}"], tiny=False)
    train(cfg)
    folder, query, _ = music_folder
    hits = search.run(folder, query, method="theme", chroma="dnn", checkpoint=run, out=tmp_path / "r.csv",
                      cache_dir=tmp_path / "c")
    assert len(hits) == len(tiny_corpus.versions) and all(np.isfinite(h.distance) for h in hits)
    assert list((tmp_path / "c" / "features").glob("dnn-*/*.npy"))  # the network's chroma is cached apart


def test_shingles_accept_a_query_shorter_than_a_shingle(tiny_corpus, tmp_path):
    folder = tmp_path / "long"
    folder.mkdir()
    for version in tiny_corpus.versions:
        soundfile.write(folder / f"{version.version_id}.wav", np.tile(version.load_audio(), 3), version.sample_rate)
    first = tiny_corpus.versions[0]
    query = tmp_path / "query.wav"
    soundfile.write(query, first.load_audio()[: 8 * first.sample_rate], first.sample_rate)  # 8 s < 20 s
    hits = search.run(folder, query, method="shingles", out=tmp_path / "ranked.csv", cache_dir=tmp_path / "c")
    assert hits[0].item_id == f"{first.version_id}.wav" and hits[0].start_s < 2.0
    soundfile.write(query, first.load_audio()[: 2 * first.sample_rate], first.sample_rate)
    with pytest.raises(search.SearchError, match="too short for shingles"):
        search.run(folder, query, method="shingles", out=tmp_path / "ranked.csv", cache_dir=tmp_path / "c")

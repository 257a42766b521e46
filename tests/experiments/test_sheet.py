"""Sheet music: engraving truth, system detection and unrolling, following, training and the command lines."""

from __future__ import annotations

import csv
import dataclasses

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from PIL import Image

from experiments import search, sync
from experiments.sheet import data as sheet_data
from experiments.sheet import engrave, evaluate, layout
from experiments.sheet.follow import Following, follow
from tests.experiments.train_helpers import compose_train

PIECE = "bach-bwv66.6"


@pytest.fixture(scope="module")
def piece_sheet(tiny_corpus):
    return sheet_data.piece_sheet(tiny_corpus.pieces[PIECE], tiny_corpus.root, tiny_corpus.config.max_measures)


def _darkness_at(page: np.ndarray, x, y, radius: int = 2) -> np.ndarray:
    """Darkest pixel (255 = paper) within ``radius`` of every point."""
    return np.asarray([page[int(round(b)) - radius:int(round(b)) + radius + 1,
                            int(round(a)) - radius:int(round(a)) + radius + 1].min() for a, b in zip(x, y)])


class TestEngraving:
    def test_onsets_are_the_pieces(self, tiny_corpus, piece_sheet):
        expected = np.unique([n.onset_q for n in tiny_corpus.pieces[PIECE].notes])
        np.testing.assert_allclose(np.unique(piece_sheet.sheet.notes[:, 0]), expected)
        pitches = sorted(n.pitch for n in tiny_corpus.pieces[PIECE].notes)
        assert sorted(piece_sheet.sheet.notes[:, 1].astype(int)) == pitches

    def test_note_heads_are_ink(self, piece_sheet):
        sheet = piece_sheet.sheet
        for k, page in enumerate(sheet.pages):
            on = sheet.notes[:, 2] == k
            assert np.all(_darkness_at(page, sheet.notes[on, 3], sheet.notes[on, 4]) < 100)
        # and the truth is not ink everywhere: 10 pixels up-left of a head is mostly paper
        page = sheet.pages[0]
        assert np.median(_darkness_at(page, sheet.notes[:, 3] - 10, sheet.notes[:, 4] - 10, 0)) > 200

    def test_cached_engraving_reads_back_equal(self, tiny_corpus, piece_sheet):
        again = engrave.engrave_piece(tiny_corpus.pieces[PIECE], tiny_corpus.root, tiny_corpus.config.max_measures)
        np.testing.assert_array_equal(again.notes, piece_sheet.sheet.notes)
        assert all(np.array_equal(a, b) for a, b in zip(again.pages, piece_sheet.sheet.pages))

    def test_pages_from_a_folder_and_a_pdf(self, piece_sheet, tmp_path):
        page = piece_sheet.sheet.pages[0]
        Image.fromarray(page).save(tmp_path / "b.png")
        Image.fromarray(page[::2, ::2]).save(tmp_path / "a.png")
        (tmp_path / "notes.txt").write_text("not a page")
        files = engrave.page_files(tmp_path)
        assert [f.name for f in files] == ["a.png", "b.png"]
        Image.fromarray(page).convert("RGB").save(tmp_path / "score.pdf", resolution=100.0)
        (from_pdf,) = engrave.load_page_images([tmp_path / "score.pdf"])
        assert abs(from_pdf.shape[0] - page.shape[0]) <= 2 and abs(from_pdf.shape[1] - page.shape[1]) <= 2
        assert len(layout.find_systems([from_pdf])) == len(layout.find_systems([page]))
        with pytest.raises(FileNotFoundError, match="no page image"):
            engrave.page_files(tmp_path / "missing")

    def test_unreadable_score_is_named(self):
        with pytest.raises(ValueError, match="Verovio could not read"):
            engrave.engrave_musicxml("this is not a score")


class TestLayout:
    def test_found_systems_match_the_svg(self, piece_sheet):
        sheet = piece_sheet.sheet
        truth = {}
        for staff in sheet.staves:
            truth.setdefault((staff.page, staff.system), []).append(staff)
        found = layout.find_systems(sheet.pages)
        assert len(found) == len(truth)
        for system, staves in zip(found, truth.values()):
            assert abs(system.top - min(s.top for s in staves)) <= 2
            assert abs(system.bottom - max(s.bottom for s in staves)) <= 2
            assert system.staves == len({(round(s.top), round(s.bottom)) for s in staves})

    def test_onset_columns_rise_with_score_time(self, piece_sheet):
        columns = piece_sheet.columns
        assert np.all(np.diff(columns) >= 0) and columns[-1] > columns[0] + 100
        assert 0 <= columns[0] and columns[-1] < piece_sheet.strip.width

    def test_strip_and_page_round_trip(self, piece_sheet):
        strip, sheet = piece_sheet.strip, piece_sheet.sheet
        columns = layout.page_to_strip(strip, sheet.notes[:, 2], sheet.notes[:, 3], sheet.notes[:, 4])
        page, x, top, bottom = layout.strip_to_page(strip, columns)
        np.testing.assert_array_equal(page, sheet.notes[:, 2])
        assert np.max(np.abs(x - sheet.notes[:, 3])) < 1.0  # one strip pixel is ~2.6 page pixels
        assert np.all((top - 4 * 8 <= sheet.notes[:, 4]) & (sheet.notes[:, 4] <= bottom + 4 * 8))

    @pytest.mark.parametrize("angle", [-1.3, 0.8])
    def test_skew_is_found_and_undone(self, piece_sheet, angle):
        from scipy import ndimage

        page = piece_sheet.sheet.pages[0]
        turned = ndimage.rotate(page.astype(np.float32), angle, reshape=False, order=1, cval=255.0).astype(np.uint8)
        assert abs(layout.skew_angle(turned) - angle) <= 0.15
        (system,) = layout.find_systems([turned])
        x, y = layout.rotate_points(piece_sheet.sheet.notes[:, 3], piece_sheet.sheet.notes[:, 4], angle, page.shape)
        strip = layout.unroll([turned], [system])
        columns = layout.page_to_strip(strip, np.zeros(len(x)), x, y)
        np.testing.assert_allclose(columns, layout.page_to_strip(piece_sheet.strip, *piece_sheet.sheet.notes[:, 2:5].T),
                                   atol=2.0)

    def test_degraded_truth_stays_on_the_notes(self, piece_sheet):
        page = piece_sheet.sheet.pages[0]
        image, to_degraded = evaluate.degrade(page, np.random.default_rng(1))
        x, y = to_degraded(piece_sheet.sheet.notes[:, 3], piece_sheet.sheet.notes[:, 4])
        assert np.median(_darkness_at(image, x, y)) < 120
        assert np.median(_darkness_at(image, x + 12, y - 12, 0)) > 180

    def test_blank_page_is_refused(self):
        with pytest.raises(ValueError, match="page 0: no staff found"):
            layout.find_systems([np.full((300, 200), 255, np.uint8)])


class _BumpEmbedder:
    """Embeds a strip column and an audio frame as a bump at one position, so the cost matrix is
    known: the audio frame t 'sounds' strip column ``spec[t, 0]``."""

    config = sheet_data.SnippetConfig(rate_hz=10.0)
    centres = np.linspace(0, 400, 81)

    def _bump(self, positions):
        e = np.exp(-0.5 * ((np.asarray(positions)[:, None] - self.centres[None]) / 10.0) ** 2)
        return e / np.linalg.norm(e, axis=1, keepdims=True)

    def sheet(self, strip, columns):
        return self._bump(columns)

    def audio(self, spec, frames):
        return self._bump(spec[np.asarray(frames, int), 0])


class TestFollowing:
    def test_recovers_a_known_tempo_curve(self):
        strip = layout.Strip(np.zeros((96, 400), np.float32), np.zeros(400, int), np.arange(400.0), (), ((1, 1),))
        t = np.arange(300)
        truth = 400 * (t / 299.0) ** 1.5  # slow start, fast end
        following = follow(_BumpEmbedder(), strip, np.stack([truth, truth], axis=1), stride=4)
        assert np.median(np.abs(following.columns - truth)) < 4.0
        assert np.all(np.diff(following.columns) >= 0)

    def test_scores_a_perfect_following_as_perfect(self, tiny_corpus, piece_sheet):
        version = tiny_corpus.versions_of(PIECE)[0]
        times = np.arange(0, version.duration_s, 0.1)
        perfect = Following(times, piece_sheet.column_of(version.time_map.to_quarters(times)))
        errors = evaluate.onset_errors(perfect, piece_sheet, version)
        assert errors.seconds.max() < 0.06 and errors.right_system.all()
        late = dataclasses.replace(perfect, times_s=times + 1.0)  # the viewer one second behind
        assert np.median(evaluate.onset_errors(late, piece_sheet, version).seconds) > 0.8


class TestModelAndLoss:
    def test_embedder_shapes_and_packing(self):
        import models

        model = models.SheetAudioEmbedder(8, sheet_shape=(16, 8), audio_shape=(8, 16), channels=(2, 4), hidden=8,
                                          rngs=nnx.Rngs(0))
        sheet, audio = jnp.ones((3, 16, 8)), jnp.zeros((3, 8, 16)).at[:, 2, 3].set(1.0)
        out = model(model.pack(sheet, audio))
        assert out.shape == (3, 2, 8)
        np.testing.assert_allclose(jnp.linalg.norm(out, axis=-1), 1.0, rtol=1e-5)
        np.testing.assert_allclose(out[:, 0], model.embed_sheet(sheet), rtol=1e-5, atol=1e-6)
        with pytest.raises(ValueError, match="expected packed pairs"):
            model(jnp.ones((3, 10)))
        with pytest.raises(ValueError, match="divisible"):
            models.SheetAudioEmbedder(8, sheet_shape=(15, 8), rngs=nnx.Rngs(0))

    def test_cross_modal_triplet_and_score(self):
        from experiments.training import objectives, scores

        eye = jnp.eye(4)
        matched = jnp.stack([eye, eye], axis=1)  # each score snippet equals its own audio
        swapped = jnp.stack([eye, eye[::-1]], axis=1)
        batch = {"labels": jnp.arange(4)}
        assert float(objectives.cross_modal_triplet(matched, batch).max()) == 0.0
        assert float(objectives.cross_modal_triplet(swapped, batch).mean()) >= 0.5  # at least the margin, on average
        np.testing.assert_array_equal(scores.task_counts("cross_modal", matched, batch), [4, 4])
        np.testing.assert_array_equal(scores.task_counts("cross_modal", swapped, batch), [0, 4])


@pytest.fixture(scope="module")
def trained_run(tiny_config, tmp_path_factory):
    from experiments import train as train_app

    run = tmp_path_factory.mktemp("sheet-run")
    cfg = compose_train(run, ["experiment=sheet_audio", "data=tiny", f"data.cache_dir={tiny_config.cache_dir}"])
    metrics, _ = train_app.train(cfg)
    assert np.isfinite(metrics["val/loss"]) and 0.0 <= metrics["val/score"] <= 1.0
    return run


class TestCommandLines:
    def test_follow_writes_csv_and_figure(self, tiny_corpus, piece_sheet, trained_run, tmp_path, capsys):
        (tmp_path / "pages").mkdir()
        for k, page in enumerate(piece_sheet.sheet.pages):
            Image.fromarray(page).save(tmp_path / "pages" / f"page{k}.png")
        version = tiny_corpus.versions_of(PIECE)[0]
        out = tmp_path / "out"
        assert sync.main(["--sheet", str(tmp_path / "pages"), str(version.audio_path), "--out", str(out),
                          "--model", str(trained_run)]) == 0
        rows = list(csv.DictReader(open(out / "follow.csv")))
        assert list(rows[0]) == ["time_s", "page", "x", "y_top", "y_bottom"]
        assert abs(len(rows) - version.duration_s * 10) <= 1  # one row per 10 Hz frame
        x = np.asarray([float(r["x"]) for r in rows])
        assert 0 <= x.min() and x.max() < piece_sheet.sheet.pages[0].shape[1]
        assert (out / "follow.png").stat().st_size > 10_000
        assert "wrote" in capsys.readouterr().out

    def test_missing_model_names_the_command(self, tiny_corpus, tmp_path, capsys, monkeypatch):
        monkeypatch.chdir(tmp_path)
        Image.fromarray(np.full((50, 50), 255, np.uint8)).save(tmp_path / "p.png")
        wav = tiny_corpus.versions_of(PIECE)[0].audio_path
        assert sync.main(["--sheet", str(tmp_path / "p.png"), str(wav), "--out", str(tmp_path / "o")]) == 2
        assert "experiment=sheet_audio" in capsys.readouterr().err

    def test_bad_page_is_one_line(self, tiny_corpus, trained_run, tmp_path, capsys):
        (tmp_path / "notes.png").write_text("not an image")
        wav = tiny_corpus.versions_of(PIECE)[0].audio_path
        assert sync.main(["--sheet", str(tmp_path / "notes.png"), str(wav), "--out", str(tmp_path / "o"),
                          "--model", str(trained_run)]) == 2
        assert "is not an image" in capsys.readouterr().err

    def test_sheet_search_ranks_every_recording(self, tiny_corpus, piece_sheet, trained_run, tmp_path):
        folder = tmp_path / "music"
        folder.mkdir()
        for version in tiny_corpus.versions:
            (folder / f"{version.version_id}.wav").symlink_to(version.audio_path)
        query = tmp_path / "page.png"
        Image.fromarray(piece_sheet.sheet.pages[0]).save(query)
        hits = search.run(folder, query, method="sheet", top=10, out=tmp_path / "ranked.csv",
                          cache_dir=tmp_path / "cache", checkpoint=trained_run)
        assert len(hits) == len(tiny_corpus.versions)
        assert all(0.0 <= h.distance <= 1.0 and h.start_s <= h.end_s for h in hits)
        assert (tmp_path / "ranked.csv").read_text().startswith("rank,file")


def test_retrieval_summary_counts_its_queries(tiny_corpus, piece_sheet):
    sheets = {PIECE: piece_sheet}
    specs = {v.version_id: np.random.default_rng(0).random((200, 120)).astype(np.float32)
             for v in tiny_corpus.versions_of(PIECE)}
    result = evaluate.retrieval_summary(_BumpEmbedder(), sheets, tiny_corpus.versions_of(PIECE), specs,
                                        queries_per_item=3)
    assert len(result["sheet_to_audio"]["top1"]) == 3 and len(result["audio_to_sheet"]["top1"]) == 3 * len(specs)
    for direction in result.values():
        assert np.all((0 <= direction["ap"]) & (direction["ap"] <= 1)) and np.all(direction["error_s"] >= 0)

"""The report builds end to end on the tiny corpus."""

from experiments import reproduce


def test_report_has_every_section_and_figure(tmp_path, monkeypatch):
    monkeypatch.setenv("SDTW_RETRIEVAL_CACHE", str(tmp_path / "cache"))
    report = reproduce.main(["--out", str(tmp_path / "report"), "--data", "tiny", "--dnn-steps", "2"])
    text = report.read_text()
    assert "## Soft-DTW explained" in text and "## Music synchronization" in text
    assert "| linear (diagonal) |" in text
    for section in ("## Theme retrieval", "## Audio matching", "## Shingle retrieval",
                    "## Nearest-neighbour search"):
        assert section in text
    assert "| enhanced | 1.000 |" in text  # tiny: every theme finds its piece first
    for row in ("DNN (CTC)", "DNN (linear scaling)", "DNN (strong alignment)", "DNN (soft-DTW)"):
        assert f"| {row} | " in text and f"| {row} | – |" not in text  # trained, evaluated
    assert (tmp_path / "report" / "training" / "ctc_chroma" / "checkpoints").is_dir()
    assert "| raw | 240 | HNSW |" in text and "| 240 | 2000 | HNSW (hnswlib) |" in text
    for figure in ("expected_alignment.png", "synchronization.png", "matching_curve.png",
                   "shingle_dimension.png", "index_scale.png"):
        assert (tmp_path / "report" / figure).stat().st_size > 10_000

"""The report builds end to end on the tiny corpus."""

from experiments import reproduce


def test_report_has_every_section_and_figure(tmp_path, monkeypatch):
    monkeypatch.setenv("SDTW_RETRIEVAL_CACHE", str(tmp_path / "cache"))
    report = reproduce.main(["--out", str(tmp_path / "report"), "--data", "tiny"])
    text = report.read_text()
    assert "## Soft-DTW explained" in text and "## Music synchronization" in text
    assert "| linear (diagonal) |" in text
    for figure in ("expected_alignment.png", "synchronization.png"):
        assert (tmp_path / "report" / figure).stat().st_size > 10_000

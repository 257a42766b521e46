"""Every `python -m experiments...` line of README.md runs.

The default run appends the smoke switch of each entry point (`debug=smoke`:
all three are Hydra apps), so the whole README runs in a few
minutes; `pytest -m slow` runs every line exactly as written. The lines run
in one folder that holds the files the README names (a.wav, b.flac,
my_music/, excerpt.wav, score.mid), made from the tiny corpus. wandb runs
offline, as a user's run would.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from experiments import provenance

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
SMOKE = {"experiments.train": "debug=smoke", "experiments.eval": "debug=smoke", "experiments.reproduce": "debug=smoke"}
INSTALL_PREFIX = re.compile(r'^pip install -e "?\.(\[[a-z,]+\])?"? && ')


def readme_commands(text: str) -> list[str]:
    """The distinct `python -m experiments...` lines of the bash blocks, comments and install prefixes removed."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.DOTALL):
        for line in block.splitlines():
            line = INSTALL_PREFIX.sub("", line.split(" # ", 1)[0].strip())
            if line.startswith("python -m experiments") and line not in commands:
                commands.append(line)
    return commands


COMMANDS = readme_commands(README.read_text())


def smoke(command: str) -> str:
    """The command with its entry point's smoke switch (once)."""
    switch = SMOKE.get(command.split()[2])
    return f"{command} {switch}" if switch and switch not in command.split() else command


def needs_skip(command: str) -> str | None:
    """Why a line cannot run on this machine (None: it can)."""
    if "hydra/launcher=slurm" in command and shutil.which("sbatch") is None:
        return "needs a Slurm cluster (sbatch)"
    return None


@pytest.fixture(scope="module")
def workdir(tiny_corpus, tmp_path_factory):
    """A folder with the files the README's commands name."""
    import music21
    from PIL import Image

    from experiments.sheet.engrave import engrave_musicxml, score_musicxml

    work = tmp_path_factory.mktemp("readme")
    first, second = tiny_corpus.versions_of(next(iter(tiny_corpus.pieces)))[:2]
    shutil.copy(first.audio_path, work / "a.wav")
    soundfile.write(work / "b.flac", second.load_audio(), second.sample_rate)
    (work / "my_music").mkdir()
    for version in tiny_corpus.versions:  # played three times over: long enough for 20 s shingles
        soundfile.write(work / "my_music" / f"{version.version_id}.wav", np.tile(version.load_audio(), 3),
                        version.sample_rate)
    soundfile.write(work / "excerpt.wav", first.load_audio()[: 6 * first.sample_rate], first.sample_rate)
    score = music21.corpus.parse("bach/bwv66.6")
    score.write("midi", fp=str(work / "score.mid"))
    score.parts[0].measures(0, 4).write("midi", fp=str(work / "theme.mid"))  # the soprano's first phrase
    sheet = engrave_musicxml(score_musicxml(score, 5))  # a chorale of the tiny corpus, engraved
    (work / "pages").mkdir()
    for k, page in enumerate(sheet.pages):
        Image.fromarray(page).save(work / "pages" / f"page-{k}.png")
    Image.fromarray(sheet.pages[0]).save(work / "page.png")
    return work


def run_line(command: str, workdir: Path, cache: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("WANDB_MODE", "XLA_FLAGS")}
    env.update(SDTW_RETRIEVAL_CACHE=str(cache), PYTHONPATH=str(ROOT),
               # The lines compile many of the same functions: JAX's persistent cache halves their time.
               JAX_COMPILATION_CACHE_DIR=str(cache / "jax"), JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
               JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")
    result = subprocess.run(command.replace("python ", f"{sys.executable} ", 1), shell=True, cwd=workdir,
                            env=env, capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, f"`{command}` exited {result.returncode}:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"


def test_the_readme_has_commands():
    modules = {c.split()[2] for c in COMMANDS}
    assert {"experiments.reproduce", "experiments.train", "experiments.eval", "experiments.sync",
            "experiments.search"} <= modules


def check_report(folder: Path) -> None:
    """The report of `python -m experiments.reproduce debug=smoke`: every section, table row and figure."""
    text = (folder / "report.md").read_text()
    for section in ("## Corpus", "## Soft-DTW explained", "## Music synchronization", "## Theme retrieval",
                    "## Audio identification (fingerprints)", "## Audio matching",
                    "## Shingle retrieval", "## Nearest-neighbour search", "## Sheet music and audio", "## Run"):
        assert section in text
    assert "| 0.001 | " in text  # soft-DTW down to gamma = 0.001
    assert "| linear (diagonal) |" in text
    assert "_Generated by `python -m experiments.reproduce debug=smoke` at commit " in text.split("## Run")[1]
    for row in ("DNN (CTC)", "DNN (linear scaling)", "DNN (strong alignment)", "DNN (soft-DTW)"):
        assert f"| {row} | " in text and f"| {row} | – |" not in text  # trained, evaluated
    (run,) = (folder / "training").glob("small-*/ctc_chroma-*")  # keyed by the data and model configs
    assert (run / "checkpoints").is_dir()
    assert "| clean | 1.00 (" in text and "| speed +5%, speed search | " in text  # fingerprints found the clips
    assert "| raw | 240 | HNSW |" in text and "| 240 | 2000 | HNSW (hnswlib) |" in text
    for dim in (6, 12, 30):  # shingle embedders trained on the train pieces, searched on the test pieces
        assert f"| trained | {dim} | KD |" in text and f"| PCA | {dim} | HNSW |" in text
        (run,) = (folder / "training").glob(f"small-*/shingle_embedder_{dim}-*")
        assert (run / "checkpoints" / "best").is_dir()
    for figure in ("expected_alignment.png", "synchronization.png", "matching_curve.png",
                   "shingle_dimension.png", "index_scale.png", "identification_confidence.png",
                   "score_following.png"):
        assert (folder / figure).stat().st_size > 10_000
    results = json.loads((folder / "results.json").read_text())
    splits = [set(results["data"][f"{split}_pieces"]) for split in ("train", "val", "test")]
    assert all(splits) and not (splits[0] & splits[2] or splits[1] & splits[2] or splits[0] & splits[1])
    theme_rows = [row for row in results["rows"] if row["table"] == "theme_retrieval"]
    assert len(theme_rows) == 6 and {row["queries"] for row in theme_rows} == {len(splits[2])}
    assert all(0 <= row["top1_ci95"][0] <= row["top1"] <= row["top1_ci95"][1] for row in theme_rows)
    assert {row["table"] for row in results["rows"]} >= {"synchronization", "audio_identification",
                                                         "audio_matching", "shingle_retrieval",
                                                         "score following", "sheet retrieval"}
    (run,) = (folder / "training").glob("small-*/sheet_audio-*")
    assert (run / "checkpoints" / "best").is_dir()


# Lines whose smoke run repeats what the default run already checks: `pytest -m slow` runs them.
SLOW_ONLY = {
    # the main report line runs the same smoke report; every data config is composed and checked in
    # tests/experiments/test_config.py (this line would render and train on 2 more pieces: ~100 s)
    "python -m experiments.reproduce data=full",
}


@pytest.mark.parametrize("command", [c for c in COMMANDS if c not in SLOW_ONLY])
def test_readme_line_runs(command, workdir):
    if reason := needs_skip(command):
        pytest.skip(reason)
    run_line(smoke(command), workdir, workdir / ".cache")
    if command == "python -m experiments.reproduce":  # the main job: look at what it built
        check_report(workdir / "reports" / "latest")


@pytest.mark.slow
@pytest.mark.parametrize("command", COMMANDS)
def test_readme_line_runs_as_written(command, workdir):
    if reason := needs_skip(command):
        pytest.skip(reason)
    run_line(command, workdir, workdir / ".cache")


def test_readme_figures_are_the_recorded_ones():
    """Each include block shows its file of docs/results/ as the last recording wrote it."""
    text = README.read_text()
    assert provenance.INCLUDE.search(text), "the README includes no recorded results"
    assert provenance.render_readme(text) == text, "README out of date: run `python -m experiments.provenance`"
    for match in provenance.INCLUDE.finditer(text):
        assert "_Generated by `python " in (ROOT / match["file"]).read_text(), f"{match['file']} has no stamp"

"""Data layer: the embedded corpus (scores rendered with exact ground truth) and loaders."""

from experiments.data.corpus import Corpus
from experiments.data.corpus import CorpusConfig
from experiments.data.corpus import build_corpus
from experiments.data.corpus import corpus_config
from experiments.data.corpus import load_corpus
from experiments.data.loaders import AudioItem
from experiments.data.loaders import AudioLoadError
from experiments.data.loaders import load_audio
from experiments.data.loaders import load_audio_folder
from experiments.data.loaders import load_score
from experiments.data.loaders import load_score_folder
from experiments.data.score import ScoreLoadError
from experiments.data.types import NoteEvent
from experiments.data.types import Performance
from experiments.data.types import Piece
from experiments.data.types import ScoreNote
from experiments.data.types import Theme
from experiments.data.types import TimeMap
from experiments.data.types import Version

__all__ = [
    "AudioItem",
    "AudioLoadError",
    "Corpus",
    "CorpusConfig",
    "NoteEvent",
    "Performance",
    "Piece",
    "ScoreLoadError",
    "ScoreNote",
    "Theme",
    "TimeMap",
    "Version",
    "build_corpus",
    "corpus_config",
    "load_audio",
    "load_audio_folder",
    "load_corpus",
    "load_score",
    "load_score_folder",
]

"""Shared fixtures: file writers, a tiny trained tokenizer, and the path of ../shared/data."""

import os
import pathlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

CORPUS = [
    "the movie was great and the acting was superb",
    "a dull , lifeless film with no charm",
    "it is a charming and often affecting journey",
    "the plot is thin but the jokes land",
    "an unflinching look at violence and its cost",
    "bad writing , bad acting , bad everything",
    "great fun for the whole family",
    "the director 's best work in years",
]


@pytest.fixture
def write(tmp_path):
    """Writes a file under tmp_path (str is UTF-8 encoded, bytes written as is); returns its path."""

    def _write(name: str, content) -> str:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            content = content.encode("utf-8")
        path.write_bytes(content)
        return str(path)

    return _write


@pytest.fixture(scope="session")
def vocab_dir(tmp_path_factory):
    """A tokenizer directory with a small WordPiece vocabulary trained on CORPUS."""
    import tensorflow as tf

    from llm_tf.text import tokenizer, vocab

    directory = tmp_path_factory.mktemp("tokenizer")
    words = vocab.train_wordpiece(tf.data.Dataset.from_tensor_slices(CORPUS * 20), vocab_size=300)
    vocab.save_wordpiece(str(directory / "vocab.txt"), words)
    tokenizer.TokenizerConfig(max_seq_length=16).save(str(directory))
    return str(directory)


@pytest.fixture(scope="session")
def text_tokenizer(vocab_dir):
    """The in-graph tokenizer over ``vocab_dir``."""
    from llm_tf.text.tokenizer import TextTokenizer

    return TextTokenizer.from_directory(vocab_dir)


@pytest.fixture
def shared_data():
    """Path of ../shared/data (the real data sets); skips, saying why, when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA}")
    return SHARED_DATA

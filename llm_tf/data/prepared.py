"""The prepared-data directory ``llm_prepare`` writes and training reads: names, writers, reader.

Layout::

    prepared_dir/
      examples/train-00000-of-0000N.tfrecord   raw canonical features (text, label, ...)
      examples/eval-00000-of-0000N.tfrecord
      tokenizer/vocab.txt (or spm.model), tokenizer/tokenizer_config.json
      labels.txt          label (or tag) vocabulary, one per line, in id order
      statistics.json     per split: counts, lengths, labels, OOV, duplicates; rejected rows
      token_lengths.png   tokens per example per split, truncation point marked
      label_counts.png    label (tag) counts per split; only for labelled data
      schema.json         inferred from the train split
      anomalies.json      only with validate_against
      rejected.jsonl      only when rows were skipped
      summary.json        what was done, with the config (its ``task`` and ``features``)

:mod:`llm_tf.data.prepare` computes the contents and writes them with the ``write_*``
functions here; :func:`load_prepared` opens the directory for training, and the pipeline's
components read single files through :func:`read_json`. The directory may be local or
``gs://`` (any ``scheme://`` TensorFlow opens): every file goes through ``tf.io.gfile`` there.
"""

import dataclasses
import json
import os
from collections.abc import Iterable

from llm_tf import io_utils
from llm_tf.data import labels as labels_lib
from llm_tf.data import tfrecords
from llm_tf.errors import DataError
from llm_tf.io_utils import atomic_write_json
from llm_tf.text.tokenizer import TextTokenizer

EXAMPLES_DIR = "examples"
TOKENIZER_DIR = "tokenizer"
LABELS_FILE = "labels.txt"
STATISTICS_FILE = "statistics.json"
SCHEMA_FILE = "schema.json"
ANOMALIES_FILE = "anomalies.json"
REJECTED_FILE = "rejected.jsonl"
SUMMARY_FILE = "summary.json"
#: Charts drawn from ``statistics.json`` (:mod:`llm_tf.data.statistics_plots`).
TOKEN_LENGTHS_PNG = "token_lengths.png"
LABEL_COUNTS_PNG = "label_counts.png"


def write_labels(directory: str, labels: Iterable[str]) -> None:
    """Writes ``labels.txt`` atomically."""
    labels_lib.save_labels(os.path.join(directory, LABELS_FILE), labels)


def write_json(directory: str, name: str, content) -> None:
    """Writes one of the JSON files (``STATISTICS_FILE``, ``SCHEMA_FILE``, ...) atomically."""
    atomic_write_json(os.path.join(directory, name), content)


def write_statistics_plots(directory: str, stats: dict, labels: Iterable[str] = ()) -> list[str]:
    """Draws ``TOKEN_LENGTHS_PNG`` and, when the splits have labels, ``LABEL_COUNTS_PNG`` (in the
    order of ``labels``, the label vocabulary) from the statistics (as written to
    ``STATISTICS_FILE``); returns the names written."""
    from llm_tf.data import statistics_plots

    statistics_plots.render_token_lengths(stats, os.path.join(directory, TOKEN_LENGTHS_PNG))
    written = [TOKEN_LENGTHS_PNG]
    if statistics_plots.has_labels(stats):
        statistics_plots.render_label_counts(stats, os.path.join(directory, LABEL_COUNTS_PNG), list(labels))
        written.append(LABEL_COUNTS_PNG)
    return written


def plot_files(directory: str) -> list[str]:
    """The charts (names) a prepared directory holds; older ones hold none."""
    return [name for name in (TOKEN_LENGTHS_PNG, LABEL_COUNTS_PNG) if io_utils.isfile(os.path.join(directory, name))]


def read_json(directory: str, name: str):
    """Reads one of the JSON files of a prepared directory (or of an artifact holding a copy).

    Raises:
        DataError: The file is missing or not valid JSON (the path is named).
    """
    path = os.path.join(directory, name)
    if not io_utils.isfile(path):
        raise DataError(f"{directory}: no {name}")
    try:
        return json.loads(io_utils.read_text(path))
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: not valid JSON: {e}") from None


@dataclasses.dataclass
class PreparedData:
    """What a prepared directory offers to training.

    Attributes:
        directory: The directory.
        task: The task it was prepared for.
        features: Canonical features in its records.
        labels: Label vocabulary (empty for unlabelled text).
        tokenizer: The in-graph tokenizer over its vocabulary.
    """

    directory: str
    task: str
    features: list[str]
    labels: list[str]
    tokenizer: TextTokenizer

    def files(self, split: str) -> list[str]:
        """Shard files of a split (raises DataError when there are none)."""
        return tfrecords.split_files(os.path.join(self.directory, EXAMPLES_DIR), split)

    def count(self, split: str) -> int:
        """Examples in a split, from the statistics written by ``llm_prepare``."""
        statistics = json.loads(io_utils.read_text(os.path.join(self.directory, STATISTICS_FILE)))
        return statistics.get(split, {}).get("count", 0)


def load_prepared(directory: str, seq_length: int) -> PreparedData:
    """Opens a directory written by ``llm_prepare``.

    Args:
        directory: The ``--output_dir`` of ``llm_prepare`` (local or ``gs://``).
        seq_length: Packed sequence length for the tokenizer.

    Raises:
        DataError: The directory is missing or not a prepared data set.
    """
    if not directory:
        raise DataError("no prepared data: set task.data.prepared_dir (the --output_dir of llm_prepare)")
    summary_path = os.path.join(directory, SUMMARY_FILE)
    if not io_utils.isfile(summary_path):
        raise DataError(f"{directory}: not a prepared data set (no {SUMMARY_FILE}; run llm_prepare first)")
    summary = json.loads(io_utils.read_text(summary_path))
    labels_path = os.path.join(directory, LABELS_FILE)
    labels = list(labels_lib.load_labels(labels_path)) if io_utils.isfile(labels_path) else []
    tokenizer = TextTokenizer.from_directory(os.path.join(directory, TOKENIZER_DIR), max_seq_length=seq_length)
    return PreparedData(directory, summary["task"], summary["features"], labels, tokenizer)

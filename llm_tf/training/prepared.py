"""Reading a directory written by ``llm_prepare``: tokenizer, labels, features, shards."""

import dataclasses
import json
import os

from llm_tf.data import labels as labels_lib
from llm_tf.data import tfrecords
from llm_tf.data.prepare import EXAMPLES_DIR, TOKENIZER_DIR
from llm_tf.errors import DataError
from llm_tf.text.tokenizer import TextTokenizer


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
        with open(os.path.join(self.directory, "statistics.json"), encoding="utf-8") as f:
            return json.load(f).get(split, {}).get("count", 0)


def load_prepared(directory: str, seq_length: int) -> PreparedData:
    """Opens a directory written by ``llm_prepare``.

    Args:
        directory: The ``--output_dir`` of ``llm_prepare``.
        seq_length: Packed sequence length for the tokenizer.

    Raises:
        DataError: The directory is missing or not a prepared data set.
    """
    if not directory:
        raise DataError("no prepared data: set task.data.prepared_dir (the --output_dir of llm_prepare)")
    summary_path = os.path.join(directory, "summary.json")
    if not os.path.isfile(summary_path):
        raise DataError(f"{directory}: not a prepared data set (no summary.json; run llm_prepare first)")
    with open(summary_path, encoding="utf-8") as f:
        summary = json.load(f)
    labels_path = os.path.join(directory, "labels.txt")
    labels = list(labels_lib.load_labels(labels_path)) if os.path.isfile(labels_path) else []
    tokenizer = TextTokenizer.from_directory(os.path.join(directory, TOKENIZER_DIR), max_seq_length=seq_length)
    return PreparedData(directory, summary["task"], summary["features"], labels, tokenizer)

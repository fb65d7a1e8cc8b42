"""Label vocabularies: given by the user or inferred from the data, saved one label a line."""

import collections
import io
import os
from collections.abc import Iterable, Sequence

from llm_tf import io_utils
from llm_tf.errors import DataError
from llm_tf.io_utils import atomic_write_text


def infer_label_vocabulary(counts: collections.Counter, task: str = "classification") -> tuple[str, ...]:
    """Orders the labels seen in the data into a stable vocabulary.

    Integer-looking labels sort numerically (``0, 1, 2``), others alphabetically; for token
    classification the outside tag ``O`` comes first, then entity types with their
    ``B-``/``I-`` tags together.

    Args:
        counts: Label to count.
        task: ``classification`` or ``token_classification``.

    Returns:
        The labels in id order.

    Example:
        >>> infer_label_vocabulary(collections.Counter({"1": 5, "0": 3, "10": 1}))
        ('0', '1', '10')
    """
    labels = [label for label in counts if label]
    if not labels:
        return ()
    if all(_is_int(label) for label in labels):
        return tuple(sorted(labels, key=int))
    if task == "token_classification":
        def tag_key(tag: str):
            if tag == "O":
                return ("", 0, "")
            prefix, _, entity = tag.partition("-")
            return (entity or prefix, 1, prefix if entity else "")

        return tuple(sorted(labels, key=tag_key))
    return tuple(sorted(labels))


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


def parse_labels(value: str | Sequence[str] | None) -> tuple[str, ...] | None:
    """Reads a given label vocabulary: a comma list, a path to a file (one a line; local or
    ``gs://``, a remote one without a comma), or None.

    Raises:
        DataError: The file is missing or empty, or a label appears twice.
    """
    if value is None or value == "" or value == []:
        return None
    if isinstance(value, str) and (("," not in value) if io_utils.is_remote(value) else os.path.isfile(value)):
        labels = load_labels(value)
    else:
        items = value.split(",") if isinstance(value, str) else value
        labels = tuple(item.strip() for item in items if item.strip())
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        raise DataError(f"label vocabulary has duplicates: {', '.join(duplicates)}")
    if not labels:
        raise DataError("label vocabulary is empty")
    return labels


def load_labels(path: str) -> tuple[str, ...]:
    """Loads a label vocabulary file (one label a line, blank lines ignored; local or ``gs://``)."""
    if not io_utils.is_remote(path):
        if not os.path.isfile(path):
            raise DataError(f"{path}: no such label file")
        with open(path, encoding="utf-8") as f:
            labels = tuple(line.strip() for line in f if line.strip())
    else:
        if not io_utils.isfile(path):
            raise DataError(f"{path}: no such label file")
        lines = io.StringIO(io_utils.read_text(path), newline=None)  # universal newlines, as open()
        labels = tuple(line.strip() for line in lines if line.strip())
    if not labels:
        raise DataError(f"{path}: label file is empty")
    return labels


def save_labels(path: str, labels: Iterable[str]) -> None:
    """Writes a label vocabulary, one label a line, atomically (local or ``gs://``)."""
    atomic_write_text(path, "".join(f"{label}\n" for label in labels))

"""Texts for TFLite calibration and evaluation: the prepared data's splits or a TSV/text file.

Full-integer quantization needs a *representative dataset*: inputs like the ones the model
will see, run through the float model to record activation ranges. They come from the
training split of the prepared data set named in the export's ``llm_tf_export.json``, or
from a file (``--representative_data``). Evaluation reads labelled texts the same way (the
prepared eval split, or a TSV such as SST-2's ``dev.tsv``).
"""

import csv
import dataclasses
import io
import itertools
import os

from llm_tf import io_utils
from llm_tf.errors import DataError

#: Column names tried, in order, for the text of a TSV with a header.
TEXT_COLUMNS = ("sentence", "text", "review")
#: Column names tried, in order, for the label of a TSV with a header.
LABEL_COLUMNS = ("label", "sentiment")


@dataclasses.dataclass
class TextSet:
    """Texts and, when known, their label names.

    Attributes:
        texts: The texts.
        labels: Label names (strings) per text, or None when the source has no labels.
        source: Where they came from (for reports).
    """

    texts: list[str]
    labels: list[str] | None
    source: str


def _pick(header: list[str], names: tuple[str, ...], wanted: str | None) -> int | None:
    lowered = [h.strip().lower() for h in header]
    for name in ([wanted] if wanted else list(names)):
        if name and name.lower() in lowered:
            return lowered.index(name.lower())
    return None


def read_text_file(path: str, limit: int | None = None, text_field: str | None = None,
                   label_field: str | None = None) -> TextSet:
    """Reads texts (and labels) from a TSV with a header, or a plain text file (one text a line).

    A ``.tsv`` file must have a header naming its text column (``text_field``, or the first of
    ``sentence``, ``text``, ``review``); a label column (``label_field``, or ``label`` /
    ``sentiment``) is read when present. Any other file is one text per non-blank line.

    Args:
        path: The file.
        limit: Read at most this many texts (None: all).
        text_field: Text column of a TSV (default: found by name).
        label_field: Label column of a TSV (default: found by name).

    Returns:
        A :class:`TextSet` (``labels`` is None for plain text or a TSV without labels).

    Raises:
        DataError: The file is missing, or a TSV has no text column.
    """
    if not io_utils.isfile(path):
        raise DataError(f"{path}: no such file")
    texts: list[str] = []
    labels: list[str] = []
    remote = io_utils.is_remote(path)  # a bucket's file is read whole (open() reads local files only)
    with io.StringIO(io_utils.read_text(path), newline="") if remote else open(path, encoding="utf-8", newline="") as f:
        if path.endswith(".tsv"):
            reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
            header = next(reader, None) or []
            text_col = _pick(header, TEXT_COLUMNS, text_field)
            if text_col is None:
                raise DataError(f"{path}: no text column (header {header!r}; expected one of "
                                f"{', '.join([text_field] if text_field else TEXT_COLUMNS)})")
            label_col = _pick(header, LABEL_COLUMNS, label_field)
            for row in reader:
                if limit is not None and len(texts) >= limit:
                    break
                if len(row) <= text_col or not row[text_col].strip():
                    continue
                texts.append(row[text_col])
                if label_col is not None:
                    labels.append(row[label_col].strip() if len(row) > label_col else "")
        else:
            for line in f:
                if limit is not None and len(texts) >= limit:
                    break
                if line.strip():
                    texts.append(line.rstrip("\r\n"))
    has_labels = bool(labels) and len(labels) == len(texts)
    return TextSet(texts, labels if has_labels else None, io_utils.abspath(path))


def read_prepared_split(prepared_dir: str, split: str, limit: int | None = None) -> TextSet:
    """Reads texts and label names from a split of an ``llm_prepare`` output.

    Args:
        prepared_dir: The prepared data directory.
        split: ``train`` or ``eval``.
        limit: At most this many examples (None: all).

    Returns:
        A :class:`TextSet` with labels.

    Raises:
        DataError: The directory or split is missing.
    """
    from llm_tf.data import tfrecords
    from llm_tf.data.prepared import EXAMPLES_DIR

    if not prepared_dir or not io_utils.isdir(prepared_dir):
        raise DataError(f"{prepared_dir or '(none)'}: prepared data directory not found (pass --prepared_dir, "
                        "or the texts with --eval_data / --representative_data)")
    files = tfrecords.split_files(os.path.join(prepared_dir, EXAMPLES_DIR), split)
    dataset = tfrecords.read_tfrecords(files, ["text", "label"])
    texts, labels = [], []
    for example in itertools.islice(dataset, limit):
        texts.append(example["text"].numpy().decode("utf-8"))
        labels.append(example["label"].numpy().decode("utf-8"))
    return TextSet(texts, labels, f"{io_utils.abspath(prepared_dir)}:{split}")


def representative_texts(count: int, path: str | None = None, prepared_dir: str | None = None,
                         split: str = "train") -> TextSet:
    """The texts that calibrate full-integer quantization.

    Args:
        count: How many (the first ``count`` of the source; must be positive).
        path: A TSV or text file; takes precedence over ``prepared_dir``.
        prepared_dir: The prepared data set (its ``split``).
        split: Split of ``prepared_dir`` to read.

    Returns:
        A :class:`TextSet` of at most ``count`` texts.

    Raises:
        DataError: ``count`` is not positive, there is no source, or it holds no text.
    """
    if count < 1:
        raise DataError(f"representative dataset: count must be >= 1, got {count}")
    if path:
        found = read_text_file(path, count)
    elif prepared_dir:
        found = read_prepared_split(prepared_dir, split, count)
    else:
        raise DataError("representative dataset: no source (pass --representative_data or keep the prepared data "
                        "named in llm_tf_export.json)")
    if not found.texts:
        raise DataError(f"representative dataset is empty: {found.source} holds no text")
    return found

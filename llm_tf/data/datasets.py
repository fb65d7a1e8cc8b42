"""Input files straight into tf.data, streamed row by row (no whole-file load).

Use this to feed raw files to a model without preparing TFRecords first; the records that
``llm_prepare`` writes are the faster path for repeated epochs.

Example:
    >>> spec = TaskSpec(text_field="sentence")
    >>> with BadRowHandler("fail") as bad_rows:
    ...     dataset = files_dataset(["train.tsv"], spec, bad_rows)
    ...     for example in dataset.batch(32).take(1):
    ...         print(example["text"].shape, example["label"].shape)
"""

from collections.abc import Iterable, Iterator, Sequence

import tensorflow as tf

from llm_tf.data import readers
from llm_tf.data.bad_rows import BadRowHandler
from llm_tf.data.examples import TaskSpec, to_example
from llm_tf.data.rows import Row, RowProblem
from llm_tf.data.tfrecords import FEATURES


def output_signature(spec: TaskSpec) -> dict[str, tf.TensorSpec]:
    """The element spec of :func:`files_dataset` for a task (canonical feature names)."""
    signature = {}
    for name in spec.features:
        dtype, is_list = FEATURES[name]
        signature[name] = tf.TensorSpec([None] if is_list else [], dtype)
    return signature


def iter_examples(items: Iterable[Row | RowProblem], spec: TaskSpec, bad_rows: BadRowHandler) -> Iterator[dict]:
    """Yields the canonical examples of ``items``, handing every problem to ``bad_rows``."""
    for item in items:
        if isinstance(item, Row):
            item = to_example(item, spec)
        if isinstance(item, RowProblem):
            bad_rows.handle(item)
            continue
        yield item


def files_dataset(
    paths: Sequence[str],
    spec: TaskSpec,
    bad_rows: BadRowHandler,
    fmt: str = "auto",
    column_names: Sequence[str] | None = None,
    text_mode: str = "line",
) -> tf.data.Dataset:
    """Streams input files into a tf.data.Dataset of canonical feature dicts.

    Files are opened (and their columns checked) at once, so a missing file or column fails
    here; rows are read lazily, each time the dataset is iterated. Under ``fail`` the first bad
    row ends the iteration; iterate inside the ``with bad_rows:`` block and it leaves the block
    as :class:`~llm_tf.errors.BadRowError` (``file:line: reason``).

    Args:
        paths: Input files, read in order.
        spec: Task and field mapping.
        bad_rows: The bad-row policy to apply.
        fmt, column_names, text_mode: As for :func:`llm_tf.data.readers.open_source`.

    Returns:
        A dataset of dicts of string tensors (``text``/``text_pair``/``label`` or
        ``tokens``/``tags``).

    Raises:
        DataError: A file is missing, empty, or lacks a column the task reads.
    """
    sources = [readers.open_source(p, fmt, column_names, text_mode) for p in paths]
    for source in sources:
        spec.check_columns(source.path, source.columns)

    def generate():
        for source in sources:
            yield from iter_examples(source, spec, bad_rows)

    return tf.data.Dataset.from_generator(generate, output_signature=output_signature(spec))

"""Prepare a data set for training: the library call behind ``llm_prepare``.

Reads the inputs (files or TFDS) row by row, applies the bad-row policy, splits, writes
TFRecord shards, infers the label vocabulary, trains (or copies) the tokenizer vocabulary,
computes statistics (and draws them: token lengths, label counts), infers a schema and
optionally validates against an earlier schema.
Everything is written to a temporary directory that becomes ``output_dir`` only on success.
Every path (inputs, ``vocab_file``, ``validate_against``, ``output_dir``) may be local or
``gs://`` (any ``scheme://`` TensorFlow opens); remote ones go through ``tf.io.gfile``.

The output's layout, and the functions that write each file, are :mod:`llm_tf.data.prepared`'s;
the steps shared with the Apache Beam path (``config.runner``, :mod:`llm_tf.data.beam_prepare`)
are :mod:`llm_tf.data.prepare_steps`'.
"""

import contextlib
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator

import tensorflow as tf

from llm_tf import io_utils
from llm_tf.data import splits, statistics, tfrecords
from llm_tf.data.bad_rows import BadRowHandler
from llm_tf.data.datasets import iter_examples
from llm_tf.data.prepare_steps import (  # noqa: F401 (PrepareResult, task_spec: this module's API)
    PrepareConfig,
    PrepareResult,
    build_tokenizer,
    check_config,
    finish,
    label_vocabulary,
    no_training_example,
    num_shards,
    open_sources,
    target_split,
    task_spec,
)
from llm_tf.data.prepared import EXAMPLES_DIR, REJECTED_FILE
from llm_tf.io_utils import atomic_directory


def _progress(rows: Iterable, enabled: bool | None, description: str) -> Iterator:
    from tqdm import tqdm

    return iter(tqdm(rows, desc=description, unit=" rows",
                     disable=(not sys.stderr.isatty()) if enabled is None else not enabled,
                     mininterval=0.5, leave=False))


def prepare(config: PrepareConfig) -> PrepareResult:
    """Runs the whole preparation; see the module docstring for the outputs.

    With ``config.runner`` the work runs as an Apache Beam pipeline
    (:func:`llm_tf.data.beam_prepare.prepare_on_beam`), which writes the same directory.

    Args:
        config: What to read and how.

    Returns:
        A :class:`PrepareResult`.

    Raises:
        ConfigError: Inconsistent options.
        DataError: Unreadable input, a bad row under ``fail``, or no usable example.
        BadRowError: A bad row under the ``fail`` policy (``file:line: reason``).
    """
    if config.runner:
        from llm_tf.data.beam_prepare import prepare_on_beam

        return prepare_on_beam(config)
    started = time.time()
    check_config(config)
    spec = task_spec(config)
    sources = open_sources(config, spec)
    features = spec.features
    with atomic_directory(config.output_dir, overwrite=config.overwrite) as work, _staging_dir(work) as staging:
        builders = {"train": statistics.StatisticsBuilder(spec.task)}
        builders["eval"] = statistics.StatisticsBuilder(spec.task, reference_keys=builders["train"].keys)
        with contextlib.ExitStack() as stack:
            bad_rows = stack.enter_context(BadRowHandler(config.bad_rows, os.path.join(work, REJECTED_FILE)))
            # Stage one shard per split first: the final shard count depends on the row count.
            writers = {s: stack.enter_context(tfrecords.ShardedWriter(staging, s, 1)) for s in splits.SPLITS}
            for split, rows in sources:
                name = getattr(rows, "path", None) or (config.tfds and f"tfds:{config.tfds}") or "input"
                for item in iter_examples(_progress(rows, config.progress, os.path.basename(name)), spec, bad_rows):
                    target = target_split(item, split, config)
                    writers[target].write(item)
                    builders[target].add(item)
        counts = {s: builders[s].count for s in splits.SPLITS}
        if counts["train"] == 0:
            raise no_training_example(config, bad_rows.count)
        examples_dir = os.path.join(work, EXAMPLES_DIR)
        io_utils.makedirs(examples_dir)
        for split in splits.SPLITS:
            if counts[split]:
                _reshard(writers[split].paths[0], examples_dir, split, num_shards(config, counts[split]))
        io_utils.remove_tree(staging)

        labels = label_vocabulary(spec, work, [builders[s].labels for s in splits.SPLITS])
        tokenizer, vocab_origin = build_tokenizer(config, spec, work)
        stats = {}
        for split in splits.SPLITS:
            if counts[split]:
                dataset = tfrecords.read_tfrecords(tfrecords.split_files(examples_dir, split), features,
                                                   batch_size=1024)
                stats[split] = {**builders[split].result(),
                                **statistics.token_statistics(tokenizer, dataset, spec.task, config.max_seq_length)}
        rejected = {"count": bad_rows.count, "by_reason": dict(sorted(bad_rows.by_reason.items()))}
        return finish(config, spec, work, stats, rejected, labels, tokenizer, vocab_origin, started)


@contextlib.contextmanager
def _staging_dir(work: str) -> Iterator[str]:
    """Where each split waits as one shard until its row count (and so its shard count) is known.

    Inside ``work`` for a local output (removed after resharding). For a bucket output, a local
    temporary directory: the staged shards are read back once, so writing them to the bucket
    would upload every example twice more.
    """
    if not io_utils.is_remote(work):
        yield os.path.join(work, ".staging")
        return
    local = tempfile.mkdtemp(prefix="llm_prepare_staging-")
    try:
        yield local
    finally:
        shutil.rmtree(local, ignore_errors=True)


def _reshard(staged: str, examples_dir: str, split: str, num_shards: int) -> None:
    """Copies a staged single-file split into ``num_shards`` round-robin shards."""
    with tfrecords.ShardedWriter(examples_dir, split, num_shards) as writer, io_utils.storage_errors(staged):
        for record in tf.data.TFRecordDataset(staged).as_numpy_iterator():
            writer.write_serialized(record)

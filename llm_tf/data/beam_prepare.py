"""``llm_prepare --runner``: the preparation as Apache Beam pipelines, with the in-process output.

The in-process path (:func:`llm_tf.data.prepare.prepare`, the default) reads every row in
one process. With ``config.runner`` (``DirectRunner``, ``DataflowRunner``, ``FlinkRunner``,
``SparkRunner``, ``PortableRunner``) :func:`prepare_on_beam` runs the same steps as two Beam
pipelines, so a corpus that does not fit one machine can be prepared:

1. **Distributed**: reading (one worker per input file), validation with the bad-row policy
   (rejected rows are a side output with their ``file:line`` reasons), the content-hash
   split, TFRecord writing (one worker per shard), the text statistics (lengths and labels as
   mergeable counts; duplicates and eval/train overlap counted by content hash) and the
   train split's word counts.
2. **In the driver**: the bad-row decision (``fail``: the first bad row in read order, the
   one the in-process path stops at, with its message), the label vocabulary, and the
   WordPiece vocabulary learnt from the workers' word counts by the in-process learner
   (:func:`llm_tf.text.vocab.wordpiece_from_counts`). A SentencePiece vocabulary or a cut
   checkpoint vocabulary (``vocab_cut``) is learnt in the driver from the written train
   shards, as in-process; ``preset``/``vocab_file`` copy the vocabulary.
3. **Distributed**: the sub-word statistics (one worker per shard), with that tokenizer.
4. **In the driver**: statistics, charts, schema, anomalies and summary, by the in-process
   code (:func:`llm_tf.data.prepare_steps.finish`).

The output is the in-process output: the same shards with the same records in the same order,
the same ``statistics.json``, ``schema.json``, vocabulary, ``labels.txt`` and ``rejected.jsonl``
(``tests/data/test_beam_prepare.py``, ``tests/integration/test_beam_prepare_sst2.py``); only
``summary.json``'s ``seconds`` and ``config`` (``runner``, ``beam_pipeline_args``) differ. The
directory is written atomically, as in-process (a temporary directory beside it, renamed or, on
a bucket, copied into place). The workers' small results for the driver pass through a scratch
directory inside it, removed before it is published.

Workers read and write through ``tf.io.gfile``, so inputs and output may be ``gs://`` (for
``DataflowRunner`` they must be: the workers cannot see the driver's disk). They need
``llm-tf`` installed (``--sdk_container_image`` or ``--setup_file``; see ``docs/prepare.md``).
"""

import logging
import os
import re
import time
from collections.abc import Callable
from typing import Any

from llm_tf import io_utils
from llm_tf.data import prepare_steps, splits, statistics, tfrecords
from llm_tf.data.bad_rows import BadRowHandler
from llm_tf.data.prepare_steps import PrepareConfig, PrepareResult
from llm_tf.data.prepared import EXAMPLES_DIR, REJECTED_FILE, TOKENIZER_DIR
from llm_tf.errors import ConfigError, DataError, LlmTfError
from llm_tf.io_utils import atomic_directory

#: The error when ``--runner`` is given without Beam installed (``llm_prepare`` prints it after
#: ``llm_prepare: error:``, on one line, and exits 1).
MISSING_BEAM = "--runner needs apache-beam: pip install 'llm-tf[beam]'"
#: The scratch directory (inside the directory being written) of the workers' results for the driver.
SCRATCH_DIR = ".beam"
#: Runners whose workers run on other machines: the output must be on a bucket.
REMOTE_RUNNERS = ("DataflowRunner",)
#: Runners on this machine.
LOCAL_RUNNERS = ("DirectRunner", "PrismRunner")


def _import_beam(runner: str):
    """Returns the ``apache_beam`` module and :mod:`llm_tf.data.beam_transforms`.

    On a local runner, Beam's own log records below errors are dropped (its start-up notes
    would bury the summary), unless the application set the ``apache_beam`` logger's level.
    Remote runners keep them: they report the job's address and progress.

    Raises:
        ConfigError: Beam is not installed (:data:`MISSING_BEAM`).
    """
    beam_logger, root = logging.getLogger("apache_beam"), logging.getLogger()
    quiet = runner in LOCAL_RUNNERS and beam_logger.level == logging.NOTSET
    if quiet:
        beam_logger.setLevel(logging.ERROR)
    root_level = root.level
    if quiet:  # importing Beam warns on the root logger that BigQuery's client library (apitools) is missing
        root.setLevel(max(root_level, logging.ERROR))
    try:
        import apache_beam as beam
    except ImportError:
        raise ConfigError(MISSING_BEAM) from None
    finally:
        root.setLevel(root_level)
    from llm_tf.data import beam_transforms

    return beam, beam_transforms


def pipeline_options(config: PrepareConfig):
    """Beam's ``PipelineOptions`` for ``config.runner`` and ``config.beam_pipeline_args``."""
    from apache_beam.options.pipeline_options import PipelineOptions

    return PipelineOptions([f"--runner={config.runner}", *config.beam_pipeline_args])


def prepare_on_beam(config: PrepareConfig) -> PrepareResult:
    """Prepares the data set as Beam pipelines on ``config.runner``; the output is the in-process one.

    Args:
        config: What to read and how (``runner`` set; ``beam_pipeline_args`` go to Beam;
            ``progress`` is ignored).

    Returns:
        A :class:`PrepareResult`, as :func:`llm_tf.data.prepare.prepare` returns.

    Raises:
        ConfigError: Inconsistent options, Beam missing, or a local output for a remote runner.
        DataError: Unreadable input, a bad row under ``fail``, or no usable example; a data
            error on a worker is raised here with its message.
        BadRowError: A bad row under the ``fail`` policy (``file:line: reason``), the first in
            read order, as in-process.
    """
    started = time.time()
    prepare_steps.check_config(config)
    if not config.runner:
        raise ConfigError("prepare_on_beam needs a runner (--runner=DirectRunner, DataflowRunner, ...)")
    if config.runner in REMOTE_RUNNERS and not io_utils.is_remote(config.output_dir):
        raise ConfigError(f"--runner={config.runner}: its workers cannot write to the local --output_dir="
                          f"{config.output_dir}; give a bucket path (gs://...)")
    beam, transforms = _import_beam(config.runner)
    spec = prepare_steps.task_spec(config)
    sources = prepare_steps.open_sources(config, spec)
    options = pipeline_options(config)
    learn_wordpiece = not config.vocab_file and config.tokenizer == "wordpiece"
    with atomic_directory(config.output_dir, overwrite=config.overwrite) as work:
        scratch = os.path.join(work, SCRATCH_DIR)
        examples_dir = os.path.join(work, EXAMPLES_DIR)
        io_utils.makedirs(scratch)

        def read_split_write(pipeline) -> None:
            _read_split_write(pipeline, beam, transforms, sources, spec, config, work, learn_wordpiece)

        _run(beam, options, read_split_write)
        if config.bad_rows == "fail":
            problems = sorted(transforms.read_fact(scratch, "rejected"), key=lambda item: item[:2])
            if problems:
                BadRowHandler("fail").handle(problems[0][2])  # raises the in-process BadRowError
            rejected = {"count": 0, "by_reason": {}}
        else:
            written = transforms.read_fact(scratch, "rejected")
            rejected = written[0] if written else {"count": 0, "by_reason": {}}
        plan = transforms.read_fact(scratch, "plan")[0]
        counts = plan["counts"]
        if counts["train"] == 0:
            raise prepare_steps.no_training_example(config, rejected["count"])
        builders = dict(transforms.read_fact(scratch, "text_statistics"))
        duplicates_train, duplicates_eval, overlap = transforms.read_fact(scratch, "duplicates")[0]
        labels = prepare_steps.label_vocabulary(spec, work, [builders[s].labels for s in splits.SPLITS
                                                             if s in builders])
        word_counts = None
        if learn_wordpiece:
            found = sorted(transforms.read_fact(scratch, "word_counts"), key=lambda item: item[1][1])
            word_counts = [(word, count) for word, (count, _) in found]
        tokenizer, vocab_origin = prepare_steps.build_tokenizer(config, spec, work, word_counts)

        shard_files = [(split, path) for split in splits.SPLITS if counts[split]
                       for path in tfrecords.split_files(examples_dir, split)]

        def measure(pipeline) -> None:
            _measure_tokens(pipeline, beam, transforms, shard_files, spec, os.path.join(work, TOKENIZER_DIR),
                            scratch)

        _run(beam, options, measure)
        token_counts = dict(transforms.read_fact(scratch, "token_counts"))
        io_utils.remove_tree(scratch)
        stats: dict[str, Any] = {}
        for split in splits.SPLITS:
            if counts[split]:
                text = builders[split].result(
                    duplicates=duplicates_train if split == "train" else duplicates_eval,
                    overlap=overlap if split == "eval" else None)
                stats[split] = {**text, **statistics.summarize_tokens(*token_counts[split], config.max_seq_length)}
        return prepare_steps.finish(config, spec, work, stats, rejected, labels, tokenizer, vocab_origin, started)


def _read_split_write(pipeline, beam, transforms, sources: list, spec, config: PrepareConfig, work: str,
                      learn_wordpiece: bool) -> None:
    """Pipeline 1: read, check, split, write the shards and rejected rows; count statistics and words."""
    scratch = os.path.join(work, SCRATCH_DIR)
    read = (pipeline
            | "Sources" >> beam.Create([(index, split, rows) for index, (split, rows) in enumerate(sources)])
            | "SpreadSources" >> beam.Reshuffle()
            | "Read" >> beam.ParDo(transforms.ReadSource(spec, config)).with_outputs(
                transforms.REJECTED, transforms.SOURCE_COUNTS, main="examples"))
    examples = read.examples | "SpreadExamples" >> beam.Reshuffle()
    plan = (read[transforms.SOURCE_COUNTS]
            | "AllCounts" >> beam.combiners.ToList()
            | "Plan" >> beam.Map(transforms.shard_plan, config))
    _fact(beam, transforms, plan, scratch, "plan")
    placed = examples | "Place" >> beam.Map(transforms.place, beam.pvalue.AsSingleton(plan))
    _ = (placed
         | "Serialize" >> beam.Map(transforms.shard_record, beam.pvalue.AsSingleton(plan))
         | "GroupShards" >> beam.GroupByKey()
         | "WriteShards" >> beam.ParDo(transforms.WriteShard(os.path.join(work, EXAMPLES_DIR))))
    text_statistics = (examples
                       | "SplitKey" >> beam.Map(lambda element: (element[0], element[3]))
                       | "TextStatistics" >> beam.CombinePerKey(transforms.TextStatistics(spec.task)))
    _fact(beam, transforms, text_statistics, scratch, "text_statistics")
    duplicates = (examples
                  | "ContentKey" >> beam.Map(transforms.content_key)
                  | "PerContent" >> beam.CombinePerKey(transforms.count_per_split)
                  | "KeyFacts" >> beam.Map(transforms.key_facts)
                  | "Duplicates" >> beam.CombineGlobally(transforms.add_facts))
    _fact(beam, transforms, duplicates, scratch, "duplicates")
    rejected = read[transforms.REJECTED]
    if config.bad_rows == "skip":
        rejected = (rejected
                    | "OneFile" >> beam.Map(lambda item: (None, item))
                    | "GroupRejected" >> beam.GroupByKey()
                    | "WriteRejected" >> beam.ParDo(transforms.WriteRejected(os.path.join(work, REJECTED_FILE))))
    _fact(beam, transforms, rejected, scratch, "rejected")
    if learn_wordpiece:
        words = (placed
                 | "Train" >> beam.Filter(lambda element: element[0] == "train")
                 | "Batch" >> beam.BatchElements(min_batch_size=256, max_batch_size=1024)
                 | "Words" >> beam.ParDo(transforms.CountWords(spec, config.lower_case))
                 | "WordCounts" >> beam.CombinePerKey(transforms.add_word_counts))
        _fact(beam, transforms, words, scratch, "word_counts")


def _measure_tokens(pipeline, beam, transforms, shard_files: list[tuple[str, str]], spec, tokenizer_dir: str,
                    scratch: str) -> None:
    """Pipeline 2: the sub-word lengths and ``[UNK]`` counts of every shard, combined per split."""
    counts = (pipeline
              | "Shards" >> beam.Create(shard_files)
              | "SpreadShards" >> beam.Reshuffle()
              | "Measure" >> beam.ParDo(transforms.MeasureShard(tokenizer_dir, spec.features, spec.task))
              | "PerSplit" >> beam.CombinePerKey(transforms.add_token_counts))
    _fact(beam, transforms, counts, scratch, "token_counts")


def _fact(beam, transforms, collection, scratch: str, name: str) -> None:
    """Collects a (small) result and writes it for the driver."""
    _ = (collection
         | f"Collect_{name}" >> beam.combiners.ToList()
         | f"Write_{name}" >> beam.Map(transforms.write_fact, scratch, name))


_BEAM_SUFFIX = re.compile(r" \[while running '[^']*'\]")


def _run(beam, options, build: Callable[[Any], None]) -> None:
    """Builds a pipeline with ``build`` and runs it to the end.

    Raises:
        ConfigError, DataError: One raised on a worker, with its own message (without Beam's
            "while running" note).
    """
    try:
        with beam.Pipeline(options=options) as pipeline:
            build(pipeline)
    except LlmTfError as e:
        kind = ConfigError if isinstance(e, ConfigError) else DataError
        raise kind(_BEAM_SUFFIX.sub("", str(e)).strip()) from None


def summary_without_run_details(summary: dict[str, Any]) -> dict[str, Any]:
    """``summary.json`` without what differs between two runs of the same preparation.

    Drops ``seconds`` and ``output_dir`` and, from its ``config``, ``output_dir``, ``runner``,
    ``beam_pipeline_args``, ``overwrite`` and ``progress``: what is left is equal for the
    in-process and the Beam output of the same inputs and options.
    """
    summary = {key: value for key, value in summary.items() if key not in ("seconds", "output_dir")}
    ignored = ("output_dir", "runner", "beam_pipeline_args", "overwrite", "progress")
    summary["config"] = {key: value for key, value in summary.get("config", {}).items() if key not in ignored}
    return summary


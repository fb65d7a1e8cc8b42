"""The steps of ``llm_prepare`` that the in-process and the Beam paths share.

:mod:`llm_tf.data.prepare` (in-process, the default) and :mod:`llm_tf.data.beam_prepare`
(``--runner``) both check the options and open the sources here, assign splits with
:func:`target_split`, shard with :func:`num_shards`, and finish the directory with
:func:`build_tokenizer` and :func:`finish` (labels, statistics, charts, schema, anomalies,
summary), so the two write the same files. The output's layout and writers are
:mod:`llm_tf.data.prepared`'s.
"""

import collections
import dataclasses
import json
import os
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import tensorflow as tf

from llm_tf import io_utils
from llm_tf.data import examples as examples_lib
from llm_tf.data import labels as labels_lib
from llm_tf.data import readers, splits, tfds_source, tfrecords
from llm_tf.data import schema as schema_lib
from llm_tf.data.prepared import (
    ANOMALIES_FILE,
    EXAMPLES_DIR,
    SCHEMA_FILE,
    STATISTICS_FILE,
    SUMMARY_FILE,
    TOKENIZER_DIR,
    write_json,
    write_labels,
    write_statistics_plots,
)
from llm_tf.data.rows import Row, RowProblem
from llm_tf.errors import ConfigError, DataError
from llm_tf.io_utils import atomic_write_json, file_sha256
from llm_tf.text import tokenizer as tokenizer_lib
from llm_tf.text import vocab as vocab_lib
from llm_tf.text import vocab_cut

#: Beam runners ``--runner`` accepts (empty: in-process).
RUNNERS = ("DirectRunner", "DataflowRunner", "FlinkRunner", "SparkRunner", "PortableRunner", "PrismRunner")


@dataclasses.dataclass
class PrepareConfig:
    """Everything ``prepare`` needs; every field is also an ``llm_prepare`` flag.

    Attributes:
        output_dir: Directory to create (atomically).
        inputs: Training input files (globs allowed).
        eval_inputs: Eval input files; when empty, ``eval_percent`` of the inputs is split off
            by content hash.
        tfds: A TFDS data set name instead of files (e.g. ``glue/sst2``).
        tfds_train_split, tfds_eval_split: TFDS splits (default from the data set's preset).
        tfds_data_dir: TFDS data directory.
        format: ``auto`` or a reader format.
        text_mode: Plain text: ``line`` or ``document``.
        column_names: Column names for header-less TSV/CSV, or CoNLL columns.
        task, text_field, text_pair_field, label_field, tokens_field, tags_field, labels,
        min_text_chars, max_text_chars: See :class:`llm_tf.data.examples.TaskSpec`.
        eval_percent: Percent of examples in the hash split's eval part.
        split_salt: Salt of the hash split.
        vocab_file: Use this vocabulary (``vocab.txt`` or SentencePiece ``.model``) instead
            of training one.
        vocab_size: Size of the vocabulary to train.
        vocab_cut: With a WordPiece ``vocab_file`` (a checkpoint's): keep only this many of its
            tokens, the ones the train split uses most (:mod:`llm_tf.text.vocab_cut`), and
            record the cut in ``tokenizer/vocab_cut.json``. 0 keeps the whole vocabulary.
        tokenizer: ``wordpiece`` or ``sentencepiece``.
        lower_case: Lower-case before tokenizing.
        max_seq_length: Packed sequence length recorded for training and statistics.
        bad_rows: ``fail`` or ``skip``.
        num_shards: TFRecord shards per split (0 = one per ~50k examples).
        validate_against: A ``schema.json`` to validate every split against.
        label_drift_threshold, length_drift_threshold: Validation thresholds.
        overwrite: Replace an existing ``output_dir``.
        progress: Show a progress bar (None: only on an interactive terminal).
        runner: Empty: prepare in this process. A Beam runner (:data:`RUNNERS`): run reading,
            validation, the split, TFRecord writing, statistics and the word counts as an Apache
            Beam pipeline (:mod:`llm_tf.data.beam_prepare`; the ``beam`` extra), with the same output.
        beam_pipeline_args: Options for Beam's ``PipelineOptions`` (``--project=...``,
            ``--temp_location=gs://...``, ``--direct_num_workers=2``, ...); only with ``runner``.
    """

    output_dir: str
    inputs: list[str] = dataclasses.field(default_factory=list)
    eval_inputs: list[str] = dataclasses.field(default_factory=list)
    tfds: str = ""
    tfds_train_split: str = ""
    tfds_eval_split: str = ""
    tfds_data_dir: str | None = None
    format: str = "auto"
    text_mode: str = "line"
    column_names: list[str] = dataclasses.field(default_factory=list)
    task: str = "classification"
    text_field: str = "text"
    text_pair_field: str | None = None
    label_field: str | None = "label"
    tokens_field: str = "tokens"
    tags_field: str = "tags"
    labels: list[str] | None = None
    min_text_chars: int = 1
    max_text_chars: int = 0
    eval_percent: float = 10.0
    split_salt: str = "llm_tf"
    vocab_file: str = ""
    vocab_size: int = 8000
    vocab_cut: int = 0
    tokenizer: str = "wordpiece"
    lower_case: bool = True
    max_seq_length: int = 128
    bad_rows: str = "fail"
    num_shards: int = 0
    validate_against: str = ""
    label_drift_threshold: float = 0.1
    length_drift_threshold: float = 0.5
    overwrite: bool = False
    progress: bool | None = None
    runner: str = ""
    beam_pipeline_args: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class PrepareResult:
    """What ``prepare`` produced.

    Attributes:
        output_dir: The output directory.
        counts: Examples per split.
        rejected: Number of rejected rows.
        labels: Label vocabulary (empty for unlabelled text).
        vocab_size: Tokenizer vocabulary size.
        statistics: The contents of ``statistics.json``.
        anomalies: Anomalies found by validation (empty when none or not validated).
        seconds: Wall time.
    """

    output_dir: str
    counts: dict[str, int]
    rejected: int
    labels: list[str]
    vocab_size: int
    statistics: dict[str, Any]
    anomalies: list[dict]
    seconds: float


def task_spec(config: PrepareConfig) -> examples_lib.TaskSpec:
    """Builds the task spec from the config, with TFDS preset field names filled in."""
    preset = tfds_source.preset_for(config.tfds) if config.tfds else None
    fields = {
        "task": config.task,
        "text_field": config.text_field,
        "text_pair_field": config.text_pair_field or None,
        "label_field": config.label_field or None,
        "tokens_field": config.tokens_field,
        "tags_field": config.tags_field,
    }
    if preset is not None:
        defaults = PrepareConfig(output_dir="")
        for name in ("task", "text_field", "label_field", "tokens_field", "tags_field"):
            if getattr(config, name) == getattr(defaults, name):
                fields[name] = getattr(preset, name)
    if fields["task"] != "classification":
        fields["label_field"] = None
    return examples_lib.TaskSpec(
        labels=tuple(config.labels) if config.labels else None,
        min_text_chars=config.min_text_chars,
        max_text_chars=config.max_text_chars,
        **fields,
    )


def check_config(config: PrepareConfig) -> None:
    """Checks the options against each other, before anything is read.

    Raises:
        ConfigError: Inconsistent options, or a path TensorFlow cannot open.
    """
    if bool(config.inputs) == bool(config.tfds):
        raise ConfigError("give either input files (--input) or a TFDS data set (--tfds), not both or neither")
    if config.eval_inputs and config.tfds:
        raise ConfigError("--eval_input reads files; with --tfds use --tfds_eval_split")
    if not 0 <= config.eval_percent < 100:
        raise ConfigError(f"--eval_percent must be in [0, 100), got {config.eval_percent}")
    if config.max_seq_length < 3:
        raise ConfigError(f"--max_seq_length must be >= 3, got {config.max_seq_length}")
    if config.num_shards < 0:
        raise ConfigError(f"--num_shards must be >= 0, got {config.num_shards}")
    if config.tokenizer not in tokenizer_lib.KINDS:
        raise ConfigError(f"--tokenizer must be one of {', '.join(tokenizer_lib.KINDS)}, got '{config.tokenizer}'")
    if not config.vocab_file and config.vocab_size <= len(tokenizer_lib.SPECIAL_TOKENS):
        raise ConfigError(f"--vocab_size must exceed {len(tokenizer_lib.SPECIAL_TOKENS)}, got {config.vocab_size}")
    if config.vocab_cut < 0:
        raise ConfigError(f"--vocab_cut must be >= 0, got {config.vocab_cut}")
    if config.vocab_cut and (not config.vocab_file or config.vocab_file.endswith(".model")):
        raise ConfigError("--vocab_cut cuts a given WordPiece vocabulary: add --preset (or --vocab_file=vocab.txt)")
    if config.runner and config.runner not in RUNNERS:
        raise ConfigError(f"--runner must be empty (in-process) or one of {', '.join(RUNNERS)}, got '{config.runner}'")
    if config.beam_pipeline_args and not config.runner:
        raise ConfigError("--beam_pipeline_args are options of a Beam runner: add --runner (e.g. DirectRunner)")
    for flag in ("output_dir", "vocab_file", "validate_against", "tfds_data_dir"):
        io_utils.check_path(getattr(config, flag) or "", f"--{flag}")
    for flag in ("inputs", "eval_inputs"):
        for path in getattr(config, flag):
            io_utils.check_path(path, f"--{flag[:-1]}")
    if config.validate_against and not io_utils.isfile(config.validate_against):
        raise ConfigError(f"{config.validate_against}: no such schema file")


@dataclasses.dataclass(frozen=True)
class TfdsRows:
    """The rows of a TFDS split (:func:`llm_tf.data.tfds_source.tfds_rows`), read when iterated; picklable."""

    name: str
    split: str
    data_dir: str | None = None

    def __iter__(self) -> Iterator[Row]:
        return iter(tfds_source.tfds_rows(self.name, self.split, self.data_dir))


def open_sources(config: PrepareConfig,
                 spec: examples_lib.TaskSpec) -> list[tuple[str | None, Iterable[Row | RowProblem]]]:
    """Opens the inputs (files checked, headers read) and returns (split, rows) per source.

    The split is None for the hash split; train sources come first. Each rows object can be
    iterated (again) and pickled, so a Beam worker can read it.

    Raises:
        DataError: A file is missing, empty, or lacks a column the task reads.
    """
    if config.tfds:
        preset = tfds_source.preset_for(config.tfds)
        train_split = config.tfds_train_split or (preset.train_split if preset else "train")
        eval_split = config.tfds_eval_split or (preset.eval_split if preset else "")
        sources: list = []
        if eval_split:
            sources.append(("train", TfdsRows(config.tfds, train_split, config.tfds_data_dir)))
            sources.append(("eval", TfdsRows(config.tfds, eval_split, config.tfds_data_dir)))
        else:
            sources.append((None, TfdsRows(config.tfds, train_split, config.tfds_data_dir)))
        return sources
    train_paths = readers.expand_patterns(config.inputs)
    eval_paths = readers.expand_patterns(config.eval_inputs)
    opened = []
    for split, paths in (("train" if eval_paths else None, train_paths), ("eval", eval_paths)):
        for path in paths:
            source = readers.open_source(path, config.format, config.column_names or None, config.text_mode)
            spec.check_columns(path, source.columns)
            opened.append((split, source))
    return opened


def target_split(example: Mapping[str, Any], split: str | None, config: PrepareConfig) -> str:
    """The split an example goes to: its source's, or by content hash (:func:`splits.assign_split`)."""
    return split or splits.assign_split(examples_lib.example_key(example), config.eval_percent / 100.0,
                                        config.split_salt)


def no_training_example(config: PrepareConfig, rejected: int) -> DataError:
    """The error for a run that found no usable training example."""
    return DataError(f"no usable training example in {', '.join(config.inputs) or config.tfds} "
                     f"({rejected} rows rejected)")


def label_vocabulary(spec: examples_lib.TaskSpec, work: str, label_counts: Iterable[Mapping[str, int]]
                     ) -> tuple[str, ...]:
    """The given or inferred label vocabulary, written to ``labels.txt`` (empty for unlabelled text).

    Args:
        spec: The task.
        work: The output directory being written.
        label_counts: Label -> count of each split, train first.
    """
    if not spec.label_feature:
        return ()
    merged: collections.Counter = collections.Counter()
    for counts in label_counts:
        merged.update(counts)
    labels = spec.labels or labels_lib.infer_label_vocabulary(merged, spec.task)
    write_labels(work, labels)
    return labels


def finish(config: PrepareConfig, spec: examples_lib.TaskSpec, work: str, stats: dict[str, Any],
           rejected: Mapping[str, Any], labels: tuple[str, ...], tokenizer: tokenizer_lib.TextTokenizer,
           vocab_origin: str, started: float) -> PrepareResult:
    """Writes the statistics, charts, schema, anomalies and summary; returns the result.

    Args:
        config: The options.
        spec: The task.
        work: The output directory being written.
        stats: Per non-empty split, its text and token statistics.
        rejected: ``count`` and ``by_reason`` (sorted) of the rejected rows.
        labels: The label vocabulary.
        tokenizer: The tokenizer written to ``work``.
        vocab_origin: Where the vocabulary came from, for the summary.
        started: When the run started (``time.time()``).

    Raises:
        DataError: The schema to validate against is not valid JSON.
    """
    features = spec.features
    stats = {**stats, "rejected": {"count": rejected["count"], "by_reason": dict(rejected["by_reason"])}}
    write_json(work, STATISTICS_FILE, stats)
    write_statistics_plots(work, stats, labels)
    schema = schema_lib.infer_schema(stats["train"], features, labels if spec.label_feature else None)
    write_json(work, SCHEMA_FILE, schema)
    anomalies: list[dict] = []
    if config.validate_against:
        anomalies = _validate(config, stats, features)
        write_json(work, ANOMALIES_FILE, {"schema": config.validate_against, "anomalies": anomalies})
    result = PrepareResult(
        output_dir=io_utils.abspath(config.output_dir),
        counts={s: stats[s]["count"] for s in splits.SPLITS if s in stats},
        rejected=rejected["count"],
        labels=list(labels),
        vocab_size=tokenizer.vocab_size,
        statistics=stats,
        anomalies=anomalies,
        seconds=round(time.time() - started, 2),
    )
    summary = dataclasses.asdict(result)
    del summary["statistics"]
    summary.update(vocab=vocab_origin, task=spec.task, features=features, config=dataclasses.asdict(config))
    write_json(work, SUMMARY_FILE, summary)
    return result


def vocab_texts(example: Mapping[str, Any], spec: examples_lib.TaskSpec) -> list[str]:
    """The strings an example adds to the vocabulary corpus, in :func:`_vocab_corpus`'s order."""
    if spec.task == "token_classification":
        return [" ".join(example["tokens"])]
    if spec.has_pair:
        return [example["text"], example["text_pair"]]
    return [example["text"]]


def _vocab_corpus(examples_dir: str, spec: examples_lib.TaskSpec) -> tf.data.Dataset:
    """The training split's text, one string per element, for vocabulary training (:func:`vocab_texts`)."""
    features = [f for f in spec.features if f in ("text", "text_pair", "tokens")]
    dataset = tfrecords.read_tfrecords(tfrecords.split_files(examples_dir, "train"), features)
    if spec.task == "token_classification":
        return dataset.map(lambda x: tf.strings.reduce_join(x["tokens"], separator=" "))
    if spec.has_pair:
        return dataset.flat_map(lambda x: tf.data.Dataset.from_tensor_slices(tf.stack([x["text"], x["text_pair"]])))
    return dataset.map(lambda x: x["text"])


def build_tokenizer(config: PrepareConfig, spec: examples_lib.TaskSpec, work_dir: str,
                    word_counts: Iterable[tuple[bytes, int]] | None = None) -> tuple[tokenizer_lib.TextTokenizer, str]:
    """Trains or copies the vocabulary into ``work_dir/tokenizer``; returns the tokenizer and its origin.

    Args:
        config: The options (vocabulary file, size, kind, lower-casing, cut).
        spec: The task (which features hold the text).
        work_dir: The output directory being written; its train shards are the corpus.
        word_counts: A WordPiece vocabulary to learn: the train split's word counts in the
            order they are first met (counted elsewhere, e.g. by Beam workers); None counts
            them here from the train shards.

    Raises:
        DataError: A missing vocabulary file, or a corpus without words.
    """
    directory = os.path.join(work_dir, TOKENIZER_DIR)
    io_utils.makedirs(directory)
    if config.vocab_file:
        if not io_utils.isfile(config.vocab_file):
            raise DataError(f"{config.vocab_file}: no such vocabulary file")
        kind = "sentencepiece" if config.vocab_file.endswith(".model") else config.tokenizer
        name = os.path.basename(config.vocab_file)
        if config.vocab_cut:
            name = "vocab.txt"
            origin = _cut_vocabulary(config, spec, work_dir, directory, name)
        else:
            io_utils.copy_file(config.vocab_file, os.path.join(directory, name))
            origin = f"given ({config.vocab_file})"
    else:
        kind = config.tokenizer
        corpus = _vocab_corpus(os.path.join(work_dir, EXAMPLES_DIR), spec)
        if kind == "wordpiece":
            if word_counts is None:
                vocab = vocab_lib.train_wordpiece(corpus, config.vocab_size, lower_case=config.lower_case)
            else:
                vocab = vocab_lib.wordpiece_from_counts(word_counts, config.vocab_size)
            name = "vocab.txt"
            vocab_lib.save_wordpiece(os.path.join(directory, name), vocab)
        else:
            texts = (t.decode("utf-8") for t in corpus.as_numpy_iterator())
            model = vocab_lib.train_sentencepiece(texts, config.vocab_size, lower_case=config.lower_case)
            name = os.path.basename(vocab_lib.save_sentencepiece(directory, model))
        origin = f"trained on the train split ({kind})"
    tokenizer_lib.TokenizerConfig(kind=kind, vocab_file=name, lower_case=config.lower_case,
                                  max_seq_length=config.max_seq_length).save(directory)
    return tokenizer_lib.TextTokenizer.from_directory(directory), origin


def _cut_vocabulary(config: PrepareConfig, spec, work_dir: str, directory: str, name: str) -> str:
    """Writes the cut of ``config.vocab_file`` to the train split's most used tokens; returns its origin."""
    full = tokenizer_lib.TextTokenizer(config.vocab_file, lower_case=config.lower_case, detokenize=False)
    corpus = _vocab_corpus(os.path.join(work_dir, EXAMPLES_DIR), spec).batch(4096)
    cut = vocab_cut.cut_vocabulary(full.vocab, full.tokenize, corpus, config.vocab_cut)
    vocab_lib.save_wordpiece(os.path.join(directory, name), cut.tokens)
    atomic_write_json(os.path.join(directory, vocab_cut.CUT_FILE),
                      {"source_vocab_file": io_utils.abspath(config.vocab_file),
                       "source_sha256": file_sha256(config.vocab_file), **cut.summary()})
    return (f"cut to {len(cut.tokens):,} of the {cut.full_size:,} tokens of {config.vocab_file} (the train split uses "
            f"{cut.used:,}; kept tokens cover {cut.coverage:.2%} of its tokens)")


def num_shards(config: PrepareConfig, count: int) -> int:
    """Shards of a split of ``count`` examples: ``--num_shards``, else one per 50,000 examples."""
    return config.num_shards or max(1, -(-count // 50_000))


def _validate(config: PrepareConfig, stats: dict, features: list[str]) -> list[dict]:
    """Anomalies of every split (and of the rejected rows) against ``config.validate_against``."""
    path = config.validate_against
    try:
        schema = json.loads(io_utils.read_text(path))
    except json.JSONDecodeError as e:
        raise DataError(f"{path}:{e.lineno}: bad JSON in schema: {e.msg}") from None
    thresholds = schema_lib.Thresholds(config.label_drift_threshold, config.length_drift_threshold)
    found = []
    for split in splits.SPLITS:
        if split in stats:
            for anomaly in schema_lib.validate(stats[split], schema, thresholds, features):
                found.append({"split": split, **anomaly.to_json()})
    for anomaly in schema_lib.rejected_anomalies(stats["rejected"]["by_reason"]):
        found.append({"split": "all", **anomaly.to_json()})
    return found

"""The Beam transforms of ``llm_prepare --runner``: each wraps a step of the in-process path.

:mod:`llm_tf.data.beam_prepare` builds the pipelines from these. Every transform calls the
functions the in-process path calls (``iter_examples``, ``prepare_steps.target_split``,
``tfrecords.serialize_example`` / ``write_shard``, ``StatisticsBuilder``, ``measure_tokens``,
``BadRowHandler``, the basic tokenizer of the word counts), so both paths compute the same
thing; what differs is only where it runs and how partial results are combined.

Elements and their order keys:

* a source is ``(index, split or None, rows)``, ``index`` its place in the inputs (train first);
* an example is ``(split, index, rank, example)``, ``rank`` its place among the examples of
  that split in that source: ``(index, rank)`` orders a split as the in-process path reads it;
* a placed example is ``(split, shard, position, example)``: the ``position``-th record of
  shard ``shard``, as the in-process round-robin writer would place it;
* a rejected row is ``(index, order, problem)``, ``order`` its place among the source's
  rejected rows (its raw record made printable: Beam's string coder takes no lone surrogates).

This module imports ``apache_beam`` (the ``beam`` extra); nothing imports it without ``--runner``.
"""

import collections
import os
import pickle
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import apache_beam as beam

from llm_tf import compat, io_utils
from llm_tf.data import prepare_steps, statistics, tfrecords
from llm_tf.data.bad_rows import BadRowHandler
from llm_tf.data.datasets import iter_examples
from llm_tf.data.examples import TaskSpec
from llm_tf.data.rows import RowProblem, printable

#: Tags of :class:`ReadSource`'s side outputs.
REJECTED = "rejected"
SOURCE_COUNTS = "source_counts"
_SPLIT_INDEX = {"train": 0, "eval": 1}


class _StopSource(Exception):
    """Under ``fail``: the source's first bad row was met; the rest of the source is not read."""


class _Collector:
    """Stands in for :class:`BadRowHandler` inside a worker: keeps the problems for the driver to judge."""

    def __init__(self, policy: str):
        self.policy = policy
        self.problems: list[RowProblem] = []

    def handle(self, problem: RowProblem) -> None:
        self.problems.append(RowProblem(problem.source, problem.line, problem.reason, printable(problem.raw)))
        if self.policy == "fail":
            raise _StopSource


class ReadSource(beam.DoFn):
    """Reads one source, checks each row (``iter_examples``) and assigns its split.

    Outputs ``(split, index, rank, example)``; rejected rows to :data:`REJECTED`; the examples
    per split of the source to :data:`SOURCE_COUNTS` (``(index, {split: n})``). Under ``fail``
    a source stops at its first bad row: the driver fails on the first of all sources' first
    bad rows, the one the in-process path stops at.

    Args:
        spec: The task.
        config: The options (bad-row policy, split fraction and salt).
    """

    def __init__(self, spec: TaskSpec, config: prepare_steps.PrepareConfig):
        self._spec = spec
        self._config = config

    def process(self, source: tuple[int, str | None, Any]) -> Iterator[Any]:
        index, split, rows = source
        collector = _Collector(self._config.bad_rows)
        ranks = {"train": 0, "eval": 0}
        rejected = 0
        try:
            for example in iter_examples(rows, self._spec, collector):
                target = prepare_steps.target_split(example, split, self._config)
                yield target, index, ranks[target], example
                ranks[target] += 1
                for problem in collector.problems:
                    yield beam.pvalue.TaggedOutput(REJECTED, (index, rejected, problem))
                    rejected += 1
                collector.problems.clear()
        except _StopSource:
            pass
        for problem in collector.problems:
            yield beam.pvalue.TaggedOutput(REJECTED, (index, rejected, problem))
            rejected += 1
        yield beam.pvalue.TaggedOutput(SOURCE_COUNTS, (index, ranks))


def shard_plan(source_counts: list[tuple[int, Mapping[str, int]]],
               config: prepare_steps.PrepareConfig) -> dict[str, Any]:
    """Where each source's examples start in their split, and each split's size and shard count.

    Args:
        source_counts: ``(index, {split: examples})`` of every source.
        config: The options (``num_shards``).

    Returns:
        ``offsets`` (``(split, index)`` -> examples of that split in earlier sources),
        ``counts`` (split -> examples) and ``shards`` (split -> shard count; 0 when empty).
    """
    offsets: dict[tuple[str, int], int] = {}
    counts = {"train": 0, "eval": 0}
    for index, ranks in sorted(source_counts):
        for split, n in ranks.items():
            offsets[(split, index)] = counts[split]
            counts[split] += n
    shards = {split: prepare_steps.num_shards(config, n) if n else 0 for split, n in counts.items()}
    return {"offsets": offsets, "counts": counts, "shards": shards}


def place(element: tuple[str, int, int, dict], plan: Mapping[str, Any]) -> tuple[str, int, int, dict]:
    """``(split, index, rank, example)`` -> ``(split, shard, position, example)``: example ``g`` of a
    split (in read order) is record ``g // shards`` of shard ``g % shards``, as ``ShardedWriter`` does."""
    split, index, rank, example = element
    number = plan["offsets"][(split, index)] + rank
    shards = plan["shards"][split]
    return split, number % shards, number // shards, example


def shard_record(element: tuple[str, int, int, dict],
                 plan: Mapping[str, Any]) -> tuple[tuple[str, int, int], tuple[int, bytes]]:
    """A placed example keyed by its shard file: ``((split, shard, shards), (position, record))``."""
    split, shard, position, example = element
    return (split, shard, plan["shards"][split]), (position, tfrecords.serialize_example(example))


class WriteShard(beam.DoFn):
    """Writes one shard file (``tfrecords.write_shard``) from its records, in position order.

    Args:
        examples_dir: The output's examples directory.
    """

    def __init__(self, examples_dir: str):
        self._examples_dir = examples_dir

    def process(self, element: tuple[tuple[str, int, int], Iterable[tuple[int, bytes]]]) -> Iterator[str]:
        (split, shard, shards), records = element
        ordered = sorted(records, key=lambda item: item[0])
        yield tfrecords.write_shard(self._examples_dir, split, shard, shards, (record for _, record in ordered))


class TextStatistics(beam.CombineFn):
    """Combines a split's examples into a :class:`StatisticsBuilder` (lengths and labels as counts)."""

    def __init__(self, task: str):
        self._task = task

    def create_accumulator(self) -> statistics.StatisticsBuilder:
        return statistics.StatisticsBuilder(self._task, track_keys=False)

    def add_input(self, builder: statistics.StatisticsBuilder, example: dict) -> statistics.StatisticsBuilder:
        builder.add(example)
        return builder

    def merge_accumulators(self, builders: Iterable[statistics.StatisticsBuilder]) -> statistics.StatisticsBuilder:
        builders = iter(builders)
        merged = next(builders)
        for builder in builders:
            merged.merge(builder)
        return merged

    def extract_output(self, builder: statistics.StatisticsBuilder) -> statistics.StatisticsBuilder:
        return builder


def content_key(element: tuple[str, int, int, dict]) -> tuple[bytes, int]:
    """``(content hash, split number)`` of an example, to count duplicates and overlap by hash."""
    split, _, _, example = element
    return statistics.example_key_digest(example), _SPLIT_INDEX[split]


def count_per_split(splits: Iterable[Any]) -> tuple[int, int]:
    """Combines split numbers (or partial results) into ``(train, eval)`` counts of one content hash."""
    train = evaluation = 0
    for value in splits:
        if isinstance(value, tuple):
            train, evaluation = train + value[0], evaluation + value[1]
        elif value == 0:
            train += 1
        else:
            evaluation += 1
    return train, evaluation


def key_facts(element: tuple[bytes, tuple[int, int]]) -> tuple[int, int, int]:
    """One content hash's share of ``(train duplicates, eval duplicates, eval examples also in train)``.

    The in-process builder counts an example as a duplicate when an earlier one had its
    content (so ``n - 1`` of ``n``), and an eval example as overlap when train has its content.
    """
    _, (train, evaluation) = element
    return max(train - 1, 0), max(evaluation - 1, 0), evaluation if train else 0


def add_facts(values: Iterable[tuple[int, ...]]) -> tuple[int, int, int]:
    """Sums :func:`key_facts` (and partial sums)."""
    total = [0, 0, 0]
    for value in values:
        for i, n in enumerate(value):
            total[i] += n
    return tuple(total)


class CountWords(beam.DoFn):
    """Counts the words of a batch of placed train examples as ``vocab.count_words`` splits them.

    Outputs ``(word, (count, first))``: ``first`` orders the word's first occurrence as the
    in-process corpus meets it (shards in order, records in order, text before pair, words in order).

    Args:
        spec: The task (which features are the text).
        lower_case: Lower-case and strip accents, as the tokenizer will.
    """

    def __init__(self, spec: TaskSpec, lower_case: bool):
        self._spec = spec
        self._lower_case = lower_case
        self._splitter = None

    def setup(self) -> None:
        self._splitter = compat.basic_tokenizer(self._lower_case)

    def process(self, batch: list[tuple[str, int, int, dict]]) -> Iterator[tuple[bytes, tuple[int, tuple]]]:
        import tensorflow as tf

        texts, keys = [], []
        for _, shard, position, example in batch:
            for field, text in enumerate(prepare_steps.vocab_texts(example, self._spec)):
                texts.append(text)
                keys.append((shard, position, field))
        counts: collections.Counter = collections.Counter()
        first: dict[bytes, tuple] = {}
        for key, words in zip(keys, self._splitter.tokenize(tf.constant(texts)).to_list()):
            for number, word in enumerate(words):
                counts[word] += 1
                if word not in first:
                    first[word] = (*key, number)
        for word, count in counts.items():
            yield word, (count, first[word])


def add_word_counts(values: Iterable[tuple[int, tuple]]) -> tuple[int, tuple]:
    """Combines ``(count, first)`` of one word: counts add, the first occurrence is the earliest."""
    total, first = 0, None
    for count, key in values:
        total += count
        first = key if first is None or key < first else first
    return total, first


class MeasureShard(beam.DoFn):
    """Tokenizes one shard file (``statistics.measure_tokens``) with the written tokenizer.

    Outputs ``(split, (length counts, unknown tokens, special tokens))``.

    Args:
        tokenizer_dir: The output's tokenizer directory.
        features: The canonical features of the records.
        task: The task.
    """

    def __init__(self, tokenizer_dir: str, features: list[str], task: str):
        self._tokenizer_dir = tokenizer_dir
        self._features = features
        self._task = task
        self._tokenizer = None

    def setup(self) -> None:
        from llm_tf.text.tokenizer import TextTokenizer

        self._tokenizer = TextTokenizer.from_directory(self._tokenizer_dir)

    def process(self, element: tuple[str, str]) -> Iterator[tuple[str, tuple[Mapping[int, int], int, int]]]:
        split, path = element
        dataset = tfrecords.read_tfrecords([path], self._features, batch_size=1024)
        yield split, statistics.measure_tokens(self._tokenizer, dataset, self._task)


def add_token_counts(values: Iterable[tuple[Mapping[int, int], int, int]]) -> tuple[collections.Counter, int, int]:
    """Combines :func:`statistics.measure_tokens` results of a split's shards."""
    lengths: collections.Counter = collections.Counter()
    unknown, specials = 0, 2
    for part_lengths, part_unknown, specials in values:
        lengths.update(part_lengths)
        unknown += part_unknown
    return lengths, unknown, specials


class WriteRejected(beam.DoFn):
    """Writes every rejected row, in read order, with the in-process writer (:class:`BadRowHandler`).

    Outputs ``{"count": n, "by_reason": {...}}`` as ``statistics.json`` records them.

    Args:
        path: The output's rejected-rows file.
    """

    def __init__(self, path: str):
        self._path = path

    def process(self, element: tuple[Any, Iterable[tuple[int, int, RowProblem]]]) -> Iterator[dict]:
        _, rejected = element
        with BadRowHandler("skip", self._path) as handler:
            for _, _, problem in sorted(rejected, key=lambda item: item[:2]):
                handler.handle(problem)
        yield {"count": handler.count, "by_reason": dict(sorted(handler.by_reason.items()))}


def write_fact(values: list, directory: str, name: str) -> None:
    """Writes a small result for the driver (a pickle under the run's scratch directory)."""
    io_utils.atomic_write_bytes(os.path.join(directory, f"{name}.pickle"), pickle.dumps(values))


def read_fact(directory: str, name: str) -> list:
    """Reads what :func:`write_fact` wrote."""
    return pickle.loads(io_utils.read_bytes(os.path.join(directory, f"{name}.pickle")))

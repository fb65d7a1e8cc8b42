"""Data statistics of one split: counts, length percentiles and histogram, labels, OOV rate, duplicates.

Computed in one streaming pass over the examples (:class:`StatisticsBuilder`) plus one
batched pass of the in-graph tokenizer over the written TFRecords (:func:`token_statistics`).
Lengths are kept as counts (length -> examples), which merge by addition: the Beam path
(:mod:`llm_tf.data.beam_prepare`) combines them across workers and gets the same numbers.
"""

import collections
import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import tensorflow as tf

from llm_tf.data.examples import example_key

PERCENTILES = (1, 5, 50, 95, 99)
#: The token length histogram has this many bins up to ``max_seq_length`` and as many again
#: beyond it; longer examples are counted in its ``overflow``.
HISTOGRAM_BINS = 32


def length_histogram(lengths: np.ndarray, max_seq_length: int, special_tokens: int) -> dict[str, Any]:
    """Counts of ``lengths`` in bins of equal width from 0 to twice ``max_seq_length``.

    The width depends on ``max_seq_length`` only, so every split of a data set shares the bins.

    Args:
        lengths: Tokens per example (without special tokens).
        max_seq_length: The packed length.
        special_tokens: Special tokens packing adds (``[CLS]``/``[SEP]``).

    Returns:
        ``bin_width``; ``counts`` (bin ``i`` holds lengths in ``[i * bin_width, (i + 1) * bin_width)``);
        ``overflow`` (lengths of ``len(counts) * bin_width`` or more); ``max_seq_length`` and
        ``special_tokens`` (examples longer than ``max_seq_length - special_tokens`` are truncated).

    Example:
        >>> length_histogram(np.array([1, 2, 2, 40]), max_seq_length=16, special_tokens=2)["counts"][:3]
        [0, 1, 2]
    """
    return length_counts_histogram(count_lengths(lengths), max_seq_length, special_tokens)


def length_counts_histogram(counts: Mapping[int, int], max_seq_length: int, special_tokens: int) -> dict[str, Any]:
    """:func:`length_histogram` of lengths given as length -> number of examples (mergeable across workers)."""
    width = max(1, -(-max_seq_length // HISTOGRAM_BINS))
    bins = -(-2 * max_seq_length // width)
    histogram = [0] * (bins + 1)
    for length, n in counts.items():
        histogram[min(int(length) // width, bins)] += int(n)
    return {"bin_width": int(width), "counts": histogram[:bins], "overflow": histogram[bins],
            "max_seq_length": int(max_seq_length), "special_tokens": int(special_tokens)}


def count_lengths(lengths: Iterable[int]) -> collections.Counter:
    """Length -> number of occurrences: what the summaries need, in a form that merges by addition."""
    values = np.asarray(list(lengths) if not isinstance(lengths, np.ndarray) else lengths, dtype=np.int64)
    unique, counts = np.unique(values, return_counts=True)
    return collections.Counter(dict(zip(unique.tolist(), counts.tolist())))


def summarize_lengths(lengths: Iterable[int]) -> dict[str, float]:
    """Returns min, max, mean and the :data:`PERCENTILES` of a list of lengths."""
    return summarize_length_counts(count_lengths(lengths))


def summarize_length_counts(counts: Mapping[int, int]) -> dict[str, float]:
    """:func:`summarize_lengths` of lengths given as length -> number of examples.

    The counts merge by addition, so a distributed run (``llm_prepare --runner``) combines
    them across workers; the result is bit for bit ``numpy.percentile``'s (linear
    interpolation) and ``numpy.mean``'s over the expanded lengths (exact integer sums below
    2**53), so both paths write the same statistics.

    Example:
        >>> summarize_length_counts({1: 2, 3: 1})["p50"]
        1.0
    """
    items = sorted((int(v), int(n)) for v, n in counts.items() if n)
    size = sum(n for _, n in items)
    if size == 0:
        return {"count": 0}
    values = np.array([v for v, _ in items], dtype=np.int64)
    ends = np.cumsum([n for _, n in items])  # sorted position k holds values[searchsorted(ends, k, "right")]
    total = sum(v * n for v, n in items)
    summary = {"count": size, "min": items[0][0], "max": items[-1][0], "mean": round(total / size, 2)}
    for p, v in zip(PERCENTILES, _percentiles(values, ends, size)):
        summary[f"p{p}"] = round(float(v), 2)
    return summary


def _percentiles(values: np.ndarray, ends: np.ndarray, size: int) -> np.ndarray:
    """``numpy.percentile(expanded, PERCENTILES)`` (method ``linear``), with numpy's own arithmetic."""
    virtual = (size - 1) * np.true_divide(np.asarray(PERCENTILES), 100)
    previous = np.floor(virtual)
    following = previous + 1
    above = virtual >= size - 1
    previous[above] = following[above] = size - 1
    gamma = virtual - np.where(above, -1, previous)  # numpy's gamma; unused where both ends are the last value
    low = values[np.searchsorted(ends, previous.astype(np.intp), side="right")]
    high = values[np.searchsorted(ends, following.astype(np.intp), side="right")]
    diff = high - low
    result = np.add(low, diff * gamma)
    np.subtract(high, diff * (1 - gamma), out=result, where=gamma >= 0.5, casting="unsafe")
    return result


def example_key_digest(example: Mapping[str, Any]) -> bytes:
    """The 16-byte content hash duplicates and the eval/train overlap are counted on."""
    return hashlib.blake2b(example_key(example).encode("utf-8", "surrogatepass"), digest_size=16).digest()


class StatisticsBuilder:
    """Accumulates the text-level statistics of one split, one example at a time.

    Lengths and labels are kept as counts, so two builders of the same split (two workers'
    shares) merge with :meth:`merge`; duplicates and overlap need every content hash and are
    counted here only with ``track_keys`` (a distributed run counts them by key instead and
    passes them to :meth:`result`).

    Args:
        task: ``classification``, ``token_classification`` or ``text``.
        reference_keys: Content hashes of another split (train) to count overlap against.
        track_keys: Keep the content hashes to count duplicates and overlap.

    Example:
        >>> builder = StatisticsBuilder("classification")
        >>> builder.add({"text": "a fine film", "label": "1"})
        >>> builder.result()["count"]
        1
    """

    def __init__(self, task: str, reference_keys: set[bytes] | None = None, track_keys: bool = True):
        self.task = task
        self.count = 0
        self.chars: collections.Counter = collections.Counter()
        self.pair_chars: collections.Counter = collections.Counter()
        self.words: collections.Counter = collections.Counter()
        self.labels: collections.Counter = collections.Counter()
        self.keys: set[bytes] = set()
        self.duplicates = 0
        self._reference = reference_keys
        self._track_keys = track_keys
        self.overlap = 0

    def add(self, example: Mapping[str, Any]) -> None:
        """Adds one canonical example."""
        self.count += 1
        if self.task == "token_classification":
            tokens = example["tokens"]
            self.chars[sum(len(t) for t in tokens) + max(len(tokens) - 1, 0)] += 1
            self.words[len(tokens)] += 1
            self.labels.update(example["tags"])
        else:
            self.chars[len(example["text"])] += 1
            self.words[len(example["text"].split())] += 1
            if "text_pair" in example:
                self.pair_chars[len(example["text_pair"])] += 1
            if "label" in example:
                self.labels[example["label"]] += 1
        if not self._track_keys:
            return
        key = example_key_digest(example)
        if key in self.keys:
            self.duplicates += 1
        else:
            self.keys.add(key)
        if self._reference is not None and key in self._reference:
            self.overlap += 1

    def merge(self, other: "StatisticsBuilder") -> "StatisticsBuilder":
        """Adds ``other``'s counts (a builder without ``track_keys``) to this one; returns self."""
        self.count += other.count
        for name in ("chars", "pair_chars", "words", "labels"):
            getattr(self, name).update(getattr(other, name))
        return self

    def result(self, duplicates: int | None = None, overlap: int | None = None) -> dict[str, Any]:
        """Returns the statistics as a JSON-ready dict.

        Args:
            duplicates: Examples whose content an earlier one of the split had (default: counted here).
            overlap: Examples whose content the reference split has (default: counted here when
                there is a reference); given, the result has ``overlap_with_train``.
        """
        duplicates = self.duplicates if duplicates is None else duplicates
        if overlap is None and self._reference is not None:
            overlap = self.overlap
        stats: dict[str, Any] = {
            "task": self.task,
            "count": self.count,
            "chars": summarize_length_counts(self.chars),
            "words": summarize_length_counts(self.words),
            "duplicates": duplicates,
            "duplicate_rate": round(duplicates / self.count, 6) if self.count else 0.0,
        }
        if self.pair_chars:
            stats["pair_chars"] = summarize_length_counts(self.pair_chars)
        if self.task != "text":
            total = sum(self.labels.values())
            stats["labels"] = {
                label: {"count": n, "fraction": round(n / total, 6)} for label, n in sorted(self.labels.items())
            }
        if overlap is not None:
            stats["overlap_with_train"] = overlap
        return stats


def token_statistics(tokenizer, dataset: tf.data.Dataset, task: str, max_seq_length: int) -> dict[str, Any]:
    """Sub-word statistics of a split: length percentiles, truncation and OOV rates.

    Args:
        tokenizer: A :class:`llm_tf.text.tokenizer.TextTokenizer`.
        dataset: Batches of parsed canonical features (from ``read_tfrecords(batch_size=...)``).
        task: The task (decides which features are tokenized).
        max_seq_length: Packed length, to report how many examples get truncated.

    Returns:
        Dict with ``tokens`` (percentiles of tokens per example, without special tokens),
        ``token_histogram`` (their :func:`length_histogram`), ``truncated_fraction``,
        ``oov_rate`` (share of ``[UNK]`` tokens) and ``token_count``.
    """
    return summarize_tokens(*measure_tokens(tokenizer, dataset, task), max_seq_length)


def measure_tokens(tokenizer, dataset: tf.data.Dataset, task: str) -> tuple[collections.Counter, int, int]:
    """Tokenizes a split (or a part of it) for :func:`summarize_tokens`.

    Args:
        tokenizer, dataset, task: As for :func:`token_statistics`.

    Returns:
        Tokens per example (without special tokens) as length -> examples, the number of
        ``[UNK]`` tokens, and the special tokens packing adds (2, or 3 for pairs). The counts of
        two parts add up to those of the whole.
    """

    @tf.function
    def measure(batch):
        if task == "token_classification":
            ids = tokenizer.tokenize_words(batch["tokens"]).merge_dims(1, 2)
            specials = 2
        else:
            ids = tokenizer.tokenize(batch["text"])
            specials = 2
            if "text_pair" in batch:
                ids = tf.concat([ids, tokenizer.tokenize(batch["text_pair"])], axis=1)
                specials = 3
        lengths = ids.row_lengths()
        unknown = tf.reduce_sum(tf.cast(ids.flat_values == tokenizer.unk_id, tf.int64))
        return lengths, unknown, specials

    lengths: collections.Counter = collections.Counter()
    unknown, specials = 0, 2
    for batch_lengths, batch_unknown, specials in dataset.map(measure).as_numpy_iterator():
        lengths.update(count_lengths(batch_lengths))
        unknown += int(batch_unknown)
    return lengths, unknown, int(specials)


def summarize_tokens(lengths: Mapping[int, int], unknown: int, specials: int, max_seq_length: int) -> dict[str, Any]:
    """The :func:`token_statistics` of a split from its (merged) :func:`measure_tokens` counts."""
    count = sum(lengths.values())
    total = sum(int(v) * int(n) for v, n in lengths.items())
    truncated = sum(int(n) for v, n in lengths.items() if v + specials > max_seq_length)
    return {
        "tokens": summarize_length_counts(lengths),
        "token_histogram": length_counts_histogram(lengths, max_seq_length, int(specials)),
        "token_count": total,
        "truncated_fraction": round(truncated / count, 6) if total else 0.0,
        "oov_rate": round(unknown / total, 6) if total else 0.0,
    }

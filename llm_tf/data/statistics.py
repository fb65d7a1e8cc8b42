"""Data statistics of one split: counts, length percentiles and histogram, labels, OOV rate, duplicates.

Computed in one streaming pass over the examples (:class:`StatisticsBuilder`) plus one
batched pass of the in-graph tokenizer over the written TFRecords (:func:`token_statistics`).
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
    width = max(1, -(-max_seq_length // HISTOGRAM_BINS))
    bins = -(-2 * max_seq_length // width)
    values = np.asarray(lengths, dtype=np.int64)
    counts = np.bincount(np.minimum(values // width, bins), minlength=bins + 1)
    return {"bin_width": int(width), "counts": [int(c) for c in counts[:bins]], "overflow": int(counts[bins]),
            "max_seq_length": int(max_seq_length), "special_tokens": int(special_tokens)}


def summarize_lengths(lengths: Iterable[int]) -> dict[str, float]:
    """Returns min, max, mean and the :data:`PERCENTILES` of a list of lengths."""
    values = np.asarray(list(lengths) if not isinstance(lengths, np.ndarray) else lengths, dtype=np.int64)
    if values.size == 0:
        return {"count": 0}
    summary = {"count": int(values.size), "min": int(values.min()), "max": int(values.max()),
               "mean": round(float(values.mean()), 2)}
    for p, v in zip(PERCENTILES, np.percentile(values, PERCENTILES)):
        summary[f"p{p}"] = round(float(v), 2)
    return summary


class StatisticsBuilder:
    """Accumulates the text-level statistics of one split, one example at a time.

    Args:
        task: ``classification``, ``token_classification`` or ``text``.
        reference_keys: Content hashes of another split (train) to count overlap against.

    Example:
        >>> builder = StatisticsBuilder("classification")
        >>> builder.add({"text": "a fine film", "label": "1"})
        >>> builder.result()["count"]
        1
    """

    def __init__(self, task: str, reference_keys: set[bytes] | None = None):
        self.task = task
        self.count = 0
        self._chars: list[int] = []
        self._pair_chars: list[int] = []
        self._words: list[int] = []
        self.labels: collections.Counter = collections.Counter()
        self.keys: set[bytes] = set()
        self.duplicates = 0
        self._reference = reference_keys
        self.overlap = 0

    def add(self, example: Mapping[str, Any]) -> None:
        """Adds one canonical example."""
        self.count += 1
        if self.task == "token_classification":
            tokens = example["tokens"]
            self._chars.append(sum(len(t) for t in tokens) + max(len(tokens) - 1, 0))
            self._words.append(len(tokens))
            self.labels.update(example["tags"])
        else:
            self._chars.append(len(example["text"]))
            self._words.append(len(example["text"].split()))
            if "text_pair" in example:
                self._pair_chars.append(len(example["text_pair"]))
            if "label" in example:
                self.labels[example["label"]] += 1
        key = hashlib.blake2b(example_key(example).encode("utf-8", "surrogatepass"), digest_size=16).digest()
        if key in self.keys:
            self.duplicates += 1
        else:
            self.keys.add(key)
        if self._reference is not None and key in self._reference:
            self.overlap += 1

    def result(self) -> dict[str, Any]:
        """Returns the statistics as a JSON-ready dict."""
        stats: dict[str, Any] = {
            "task": self.task,
            "count": self.count,
            "chars": summarize_lengths(self._chars),
            "words": summarize_lengths(self._words),
            "duplicates": self.duplicates,
            "duplicate_rate": round(self.duplicates / self.count, 6) if self.count else 0.0,
        }
        if self._pair_chars:
            stats["pair_chars"] = summarize_lengths(self._pair_chars)
        if self.task != "text":
            total = sum(self.labels.values())
            stats["labels"] = {
                label: {"count": n, "fraction": round(n / total, 6)} for label, n in sorted(self.labels.items())
            }
        if self._reference is not None:
            stats["overlap_with_train"] = self.overlap
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

    lengths, unknown, specials = [], 0, 2
    for batch_lengths, batch_unknown, specials in dataset.map(measure).as_numpy_iterator():
        lengths.append(batch_lengths)
        unknown += int(batch_unknown)
    all_lengths = np.concatenate(lengths) if lengths else np.zeros([0], np.int64)
    total = int(all_lengths.sum())
    return {
        "tokens": summarize_lengths(all_lengths),
        "token_histogram": length_histogram(all_lengths, max_seq_length, int(specials)),
        "token_count": total,
        "truncated_fraction": round(float(np.mean(all_lengths + specials > max_seq_length)), 6) if total else 0.0,
        "oov_rate": round(unknown / total, 6) if total else 0.0,
    }

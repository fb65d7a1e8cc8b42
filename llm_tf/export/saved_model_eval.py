"""Evaluates an exported SavedModel on a prepared eval split, overall and in slices.

Classification: accuracy overall, per true label and per length bucket (words), and the
confusion matrix of gold x predicted labels. Token classification (NER): seqeval entity F1
overall, per entity type, and per length bucket, and the confusion matrix of gold x predicted
entity types per word (B-/I- prefixes dropped, ``O`` included: which types are confused with
which, and which are missed). The model is called through its ``serving_default`` raw-text
signature, exactly as served.
The pipeline's Evaluator and ``benchmarks/served_parity.py`` use it.
"""

import itertools
import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import tensorflow as tf

from llm_tf.errors import ConfigError, DataError

DEFAULT_BUCKETS = (8, 16, 32)
#: The tasks :func:`evaluate_saved_model` scores, and the ``serving_default`` output each reads.
OUTPUTS = {"classification": "labels", "token_classification": "tags"}


def check_buckets(boundaries: tuple[int, ...], field: str = "buckets") -> tuple[int, ...]:
    """``boundaries`` as a tuple when they are strictly increasing positive word counts.

    Raises:
        ConfigError: Empty, not positive, or not increasing (the message names ``field``).
    """
    bounds = tuple(boundaries)
    if not bounds or bounds[0] < 1 or any(a >= b for a, b in zip(bounds, bounds[1:])):
        raise ConfigError(f"{field} must be increasing positive word counts, got {list(bounds)}")
    return bounds


def bucket_name(words: int, boundaries: tuple[int, ...]) -> str:
    """The length bucket of a text of ``words`` words (``<=8``, ``9-16``, ..., ``>32``).

    Raises:
        ConfigError: No boundaries.
    """
    if not boundaries:
        raise ConfigError("buckets: give at least one boundary")
    low = 1
    for bound in boundaries:
        if words <= bound:
            return f"{low}-{bound}" if low > 1 else f"<={bound}"
        low = bound + 1
    return f">{boundaries[-1]}"


def bucket_order(name: str) -> int:
    """Sort key of a :func:`bucket_name` by length (``<=8`` < ``9-16`` < ``>32``); other names last.

    Example:
        >>> sorted([">32", "9-16", "<=8"], key=bucket_order)
        ['<=8', '9-16', '>32']
    """
    head = name.lstrip("<=>").split("-")[0]
    if not head.isdigit():
        return 1 << 62
    return 0 if name.startswith("<=") else int(head) + (1 if name.startswith(">") else 0)


def load_serving_signature(version_dir: str):
    """Loads an exported version; returns ``(loaded, its serving_default function)`` (keep
    ``loaded`` alive while calling the function).

    Raises:
        DataError: No SavedModel there, or one without a ``serving_default`` signature.
    """
    import tensorflow_text  # noqa: F401  (registers the tokenizer ops the SavedModel uses)

    if not tf.saved_model.contains_saved_model(version_dir):
        raise DataError(f"{version_dir}: no SavedModel there (export one with llm_export)")
    loaded = tf.saved_model.load(version_dir)
    if "serving_default" not in loaded.signatures:
        raise DataError(f"{version_dir}: no serving_default signature (signatures: "
                        f"{', '.join(sorted(loaded.signatures)) or 'none'})")
    return loaded, loaded.signatures["serving_default"]


def batches(items: list, size: int) -> Iterator[list]:
    """``items`` in consecutive slices of at most ``size``.

    Raises:
        ConfigError: ``size`` < 1.
    """
    if size < 1:
        raise ConfigError(f"batch size must be >= 1, got {size}")
    return (items[start:start + size] for start in range(0, len(items), size))


def read_eval_split(prepared_dir: str, task: str, limit: int | None = None) -> tuple[list[str], list[Any]]:
    """Texts and gold labels (classification) or tag lists (NER) of the prepared eval split.

    Raises:
        DataError: No prepared directory or no eval split.
    """
    from llm_tf.data import tfrecords
    from llm_tf.export.representative import read_prepared_split

    if task != "token_classification":
        text_set = read_prepared_split(prepared_dir, "eval", limit)
        return text_set.texts, list(text_set.labels or [])
    files = tfrecords.split_files(os.path.join(prepared_dir, "examples"), "eval")
    texts, tags = [], []
    for example in itertools.islice(tfrecords.read_tfrecords(files, ["tokens", "tags"]), limit):
        texts.append(" ".join(t.decode("utf-8") for t in example["tokens"].numpy()))
        tags.append([t.decode("utf-8") for t in example["tags"].numpy()])
    return texts, tags


def evaluate_saved_model(version_dir: str, texts: list[str], gold: list[Any], task: str,
                         buckets: tuple[int, ...] = DEFAULT_BUCKETS, batch_size: int = 64) -> dict[str, Any]:
    """Runs ``serving_default`` on ``texts`` and scores it against ``gold``.

    Args:
        version_dir: A SavedModel version directory written by ``llm_export``.
        texts: Raw texts (NER: words joined by spaces).
        gold: Gold label names, or per-text tag lists for NER.
        task: ``classification`` or ``token_classification``.
        buckets: Length bucket upper bounds, in words.
        batch_size: Texts per call.

    Returns:
        ``{"metric": name, "value": v, "count": n, "by_label": {...}, "by_length": {...},
        "confusion_matrix": {...}}``, each slice ``{"count", "value"}``; the confusion matrix
        as :func:`confusion_matrix` returns it (NER: over entity types, per word).

    Raises:
        ConfigError: An unknown task, bad buckets or batch size.
        DataError: No texts, not one gold entry per text, no SavedModel or ``serving_default``
            there, or a signature without the task's output (``labels`` or ``tags``).
    """
    if task not in OUTPUTS:
        raise ConfigError(f"task must be one of {', '.join(OUTPUTS)}, got '{task}'")
    buckets = check_buckets(buckets)
    chunks = batches(texts, batch_size)
    if not texts:
        raise DataError(f"{version_dir}: nothing to evaluate (empty eval split)")
    if len(gold) != len(texts):
        raise DataError(f"{version_dir}: {len(texts)} texts but {len(gold)} gold entries")
    _, serve = load_serving_signature(version_dir)
    output = OUTPUTS[task]
    if output not in serve.structured_outputs:
        raise DataError(f"{version_dir}: serving_default has no '{output}' output for {task} (outputs: "
                        f"{', '.join(sorted(serve.structured_outputs))})")
    predictions: list[Any] = []
    for chunk in chunks:
        values = serve(text=tf.constant(chunk))[output].numpy()
        if task == "token_classification":
            predictions.extend([t.decode("utf-8") for t in row] for row in values)
        else:
            predictions.extend(label.decode("utf-8") for label in values)
    lengths = [bucket_name(len(t.split()), buckets) for t in texts]
    if task == "token_classification":
        return _ner_metrics(predictions, gold, lengths)
    return _classification_metrics(predictions, gold, lengths)


def entity_type(tag: str) -> str:
    """A word's entity type in a BIO/BIOES tag (``B-PER`` -> ``PER``); ``O`` and "" (no tag) -> ``O``."""
    if not tag or tag == "O":
        return "O"
    return tag[2:] if len(tag) > 2 and tag[1] == "-" and tag[0] in "BIESLU" else tag


def confusion_matrix(gold: list[str], predicted: list[str], unit: str, last: str | None = None) -> dict[str, Any]:
    """Counts of (gold, predicted) pairs.

    Args:
        gold: Gold labels.
        predicted: Predicted labels, one per gold label.
        unit: What one count is (``example``, ``word``).
        last: A label to put last (NER: ``O``); the others are sorted.

    Returns:
        ``{"labels": [...], "counts": [[...]], "unit": unit}``: ``counts[i][j]`` is how many with
        gold ``labels[i]`` were predicted ``labels[j]`` (rows: gold, columns: predicted).

    Example:
        >>> confusion_matrix(["a", "a", "b"], ["a", "b", "b"], "example")["counts"]
        [[1, 1], [0, 1]]
    """
    labels = sorted(set(gold) | set(predicted), key=lambda name: (name == last, name))
    index = {name: i for i, name in enumerate(labels)}
    counts = [[0] * len(labels) for _ in labels]
    for g, p in zip(gold, predicted):
        counts[index[g]][index[p]] += 1
    return {"labels": labels, "counts": counts, "unit": unit}


def _classification_metrics(predicted: list[str], gold: list[str], lengths: list[str]) -> dict[str, Any]:
    correct = np.array([p == g for p, g in zip(predicted, gold)], dtype=np.float64)

    def slices(keys: list[str]) -> dict[str, dict[str, float]]:
        result = {}
        for key in sorted(set(keys)):
            mask = np.array([k == key for k in keys])
            result[key] = {"count": int(mask.sum()), "value": float(correct[mask].mean())}
        return result

    return {"metric": "accuracy", "value": float(correct.mean()), "count": len(gold),
            "by_label": slices(gold), "by_length": slices(lengths),
            "confusion_matrix": confusion_matrix(gold, predicted, "example")}


def _ner_metrics(predicted: list[list[str]], gold: list[list[str]], lengths: list[str]) -> dict[str, Any]:
    from seqeval.metrics import classification_report, f1_score

    pred = [(p + ["O"] * len(g))[:len(g)] for p, g in zip(predicted, gold)]
    pred = [[t or "O" for t in p] for p in pred]
    report = classification_report(gold, pred, output_dict=True, zero_division=0)
    by_label = {name: {"count": int(v["support"]), "value": float(v["f1-score"])} for name, v in report.items()
                if "avg" not in name}
    by_length = {}
    for key in sorted(set(lengths)):
        idx = [i for i, k in enumerate(lengths) if k == key]
        by_length[key] = {"count": len(idx), "value": float(f1_score([gold[i] for i in idx], [pred[i] for i in idx],
                                                                     zero_division=0))}
    words = confusion_matrix([entity_type(t) for tags in gold for t in tags],
                             [entity_type(t) for tags in pred for t in tags], "word", last="O")
    return {"metric": "entity_f1", "value": float(f1_score(gold, pred, zero_division=0)), "count": len(gold),
            "by_label": by_label, "by_length": by_length, "confusion_matrix": words}

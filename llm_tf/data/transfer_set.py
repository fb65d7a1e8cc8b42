"""The distillation transfer set: labelled rows, in-domain extra sentences and augmented copies.

A student learns from a teacher's soft labels on a *transfer set* larger than the labelled
data. :func:`build_transfer_set` writes one as a TSV that ``llm_prepare --text_field=sentence
--label_field=label`` reads (the extra ``source`` column is ignored there)::

    sentence<TAB>label<TAB>source
    a gorgeous , witty , seductive movie .<TAB>1<TAB>labelled
    The acting is superb throughout.<TAB>1<TAB>extra
    a gorgeous , witty , alluring movie .<TAB>1<TAB>augmented

Rows come from three sources, in this priority order:

* ``labelled``: every row of the labelled files (text and label as they are);
* ``extra``: the sentences of in-domain documents with a label field (IMDB reviews): HTML
  markup stripped, split on ``.``/``!``/``?`` followed by white space and at ``<br />``
  breaks, kept when they have ``min_words`` to ``max_words`` words; each sentence inherits
  the document's label mapped through ``label_map``;
* ``augmented``: ``augment_copies`` copies of each labelled sentence (of at least
  ``min_words`` words) in the spirit of TinyBERT: each word that is a whole-word WordPiece
  token of the checkpoint is, with probability ``replace_prob``, replaced by one of its
  ``neighbours`` nearest whole-word tokens by cosine similarity of the checkpoint's token
  embedding table; then, with probability ``crop_prob``, the copy is cropped to a random
  contiguous span of at least ``max(min_words, half)`` of its words.

Texts are deduplicated by a normalised key (lower-cased, accents stripped, letters and digits
only: ``don't``, ``do n't`` and ``Don't!`` are one text); the first occurrence in priority order
wins. No row whose key equals the key of an ``exclude`` row (the dev/eval files) is written,
whichever source produced it. The output is a seeded shuffle of the kept rows: the same
inputs and seed give a byte-identical file. A summary JSON (:data:`SUMMARY_SUFFIX`) beside the
output has the counts per source, the drops per reason, the label distribution, the bad rows
(``file:line: reason``), the config and the SHA-256 of every input.

This module has the config, the build and the output; reading the inputs is in
:mod:`llm_tf.data.transfer_set_sources`, the augmentation in :mod:`llm_tf.data.transfer_set_augment`.

Example:
    >>> config = TransferSetConfig(labelled=["sst2/train.tsv"], extra=["imdb/reviews.csv"],
    ...                            label_map={"positive": "1", "negative": "0"}, exclude=["sst2/dev.tsv"],
    ...                            augment_copies=2, preset="all_minilm_l6_v2")
    >>> summary = build_transfer_set(config, "transfer/sst2_transfer.tsv")  # doctest: +SKIP
    >>> summary["counts"]  # doctest: +SKIP
    {'augmented': ..., 'extra': ..., 'labelled': ...}
"""

import collections
import dataclasses
import hashlib
import os
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from llm_tf import io_utils
from llm_tf.data import readers
from llm_tf.data.rows import RowProblem
from llm_tf.data.transfer_set_augment import augment_all
from llm_tf.data.transfer_set_sources import (
    Report,
    clean_text,
    normalise,
    read_exclude,
    read_extra,
    read_labelled,
)
from llm_tf.errors import ConfigError, DataError
from llm_tf.io_utils import atomic_write_json, atomic_write_text, file_sha256

#: Output columns, in order (``llm_prepare --text_field=sentence --label_field=label``).
TEXT_COLUMN = "sentence"
LABEL_COLUMN = "label"
SOURCE_COLUMN = "source"
OUTPUT_COLUMNS = (TEXT_COLUMN, LABEL_COLUMN, SOURCE_COLUMN)
#: The output must be a TSV (``llm_prepare`` tells the format from the extension).
OUTPUT_EXTENSION = ".tsv"
#: The summary is written to ``<output>`` + this suffix.
SUMMARY_SUFFIX = ".summary.json"
#: Values of the ``source`` column, in priority order (the first occurrence of a text wins).
SOURCES = ("labelled", "extra", "augmented")


@dataclasses.dataclass
class TransferSetConfig:
    """What :func:`build_transfer_set` reads and how; every field is an ``llm_transfer_set`` flag.

    Attributes:
        labelled: Labelled TSV/CSV/JSONL files (globs allowed), e.g. SST-2 ``train.tsv``.
        text_field: Their text field; a comma list gives alternatives (each file uses the first it has).
        label_field: Their label field. The labels seen there form the label set.
        extra: Files of extra in-domain documents with a label field, e.g. IMDB ``reviews.csv``.
        extra_text_field: Their text field (comma list of alternatives allowed).
        extra_label_field: Their label field.
        label_map: Extra label -> label of the label set (``{"positive": "1"}``). An extra label
            neither mapped nor in the label set is a bad row, reported by ``file:line``.
        exclude: Files whose texts must not appear in the output (the dev/eval files); their
            text field is ``text_field``.
        augment_copies: Augmented copies per labelled sentence (0: no augmentation).
        replace_prob: Probability that a replaceable word of a copy is replaced.
        neighbours: A word is replaced by one of its this many nearest whole-word tokens.
        crop_prob: Probability that a copy is cropped to a contiguous span.
        min_words: Extra sentences (and augmentation sources and crops) have at least this many words.
        max_words: Extra sentences have at most this many words.
        seed: Seed of the augmentation and the output shuffle.
        preset: The checkpoint whose token embeddings and vocabulary give the neighbours: a named
            preset (``all_minilm_l6_v2``), a Hugging Face or keras-hub BERT directory. Required
            when ``augment_copies`` > 0.
        max_rows: Keep at most this many rows, in priority order labelled, extra, augmented,
            before the shuffle (0: no cap).
    """

    labelled: list[str] = dataclasses.field(default_factory=list)
    text_field: str = "sentence"
    label_field: str = "label"
    extra: list[str] = dataclasses.field(default_factory=list)
    extra_text_field: str = "review"
    extra_label_field: str = "sentiment"
    label_map: dict[str, str] = dataclasses.field(default_factory=dict)
    exclude: list[str] = dataclasses.field(default_factory=list)
    augment_copies: int = 0
    replace_prob: float = 0.4
    neighbours: int = 15
    crop_prob: float = 0.25
    min_words: int = 3
    max_words: int = 64
    seed: int = 42
    preset: str = ""
    max_rows: int = 0


def parse_label_map(pairs: list[str], field: str = "--label_map",
                    example: str = "positive:1,negative:0") -> dict[str, str]:
    """Parses ``FROM:TO`` pairs (an extra file's label to the labelled set's) into a dict.

    Args:
        pairs: The pairs, e.g. ``["positive:1", "negative:0"]``.
        field: The flag or option named in errors.
        example: A correct value, shown in errors.

    Raises:
        ConfigError: A pair without ``:``, an empty side, or a label mapped twice.
    """
    mapping: dict[str, str] = {}
    for pair in pairs:
        source, sep, target = pair.partition(":")
        source, target = source.strip(), target.strip()
        if not sep or not source or not target:
            raise ConfigError(f"{field}: '{pair}' is not FROM:TO (e.g. {field}={example})")
        if source in mapping and mapping[source] != target:
            raise ConfigError(f"{field}: '{source}' is mapped twice ({mapping[source]} and {target})")
        mapping[source] = target
    return mapping


# -- the build ---------------------------------------------------------------------------------


def _check_config(config: TransferSetConfig, output_path: str) -> None:
    if not config.labelled:
        raise ConfigError("give at least one labelled file (--labelled)")
    if config.augment_copies < 0:
        raise ConfigError(f"--augment_copies must be >= 0, got {config.augment_copies}")
    for name in ("replace_prob", "crop_prob"):
        value = getattr(config, name)
        if not 0.0 <= value <= 1.0:
            raise ConfigError(f"--{name} must be in [0, 1], got {value}")
    if config.neighbours < 1:
        raise ConfigError(f"--neighbours must be >= 1, got {config.neighbours}")
    if config.min_words < 1 or config.max_words < config.min_words:
        raise ConfigError(f"need 1 <= --min_words <= --max_words, got {config.min_words} and {config.max_words}")
    if config.max_rows < 0:
        raise ConfigError(f"--max_rows must be >= 0, got {config.max_rows}")
    if config.augment_copies > 0 and not config.preset:
        raise ConfigError(f"--augment_copies={config.augment_copies} needs --preset (the checkpoint whose token "
                          "embeddings give the replacement words), e.g. --preset=all_minilm_l6_v2")
    if not output_path:
        raise ConfigError("give the output file (--output)")
    if not output_path.endswith(OUTPUT_EXTENSION):
        raise ConfigError(f"--output={output_path}: must end in {OUTPUT_EXTENSION} (llm_prepare tells the format from "
                          "the extension)")
    for key, value in config.label_map.items():
        if not str(key).strip() or not str(value).strip():
            raise ConfigError(f"--label_map: empty label in '{key}:{value}'")
        if any(ch in str(value) for ch in "\t\r\n"):
            raise ConfigError(f"--label_map: tab or line break in the label {value!r}")


def _same_path(a: str, b: str) -> bool:
    if io_utils.is_remote(a) or io_utils.is_remote(b):
        return a.rstrip("/") == b.rstrip("/")
    return os.path.realpath(a) == os.path.realpath(b)


def build_transfer_set(config: TransferSetConfig, output_path: str) -> dict[str, Any]:
    """Builds the transfer set and writes it, with its summary, atomically.

    Args:
        config: What to read and how.
        output_path: The TSV to write (local or ``gs://``; its directory is created). The
            summary goes to ``output_path + SUMMARY_SUFFIX``.

    Returns:
        The summary (also written as JSON): ``rows``, ``counts`` per source, ``labels``,
        ``candidates`` and ``dropped`` per source and reason, ``excluded`` per source,
        ``bad_rows``, ``augmentation``, ``inputs`` (path, role, rows, sha256), ``config``.

    Raises:
        ConfigError: Inconsistent options, an output path equal to an input, an unusable preset.
        DataError: A missing or empty input, a missing field (the message lists the file's
            fields), a file without rows, an exclude file without text, or no row left.
    """
    started = time.time()
    _check_config(config, output_path)
    roles = {"labelled": readers.expand_patterns(config.labelled, "labelled"),
             "extra": readers.expand_patterns(config.extra, "extra"),
             "exclude": readers.expand_patterns(config.exclude, "exclude")}
    summary_path = output_path + SUMMARY_SUFFIX
    for role, paths in roles.items():
        for path in paths:
            for written in (output_path, summary_path):
                if _same_path(path, written):
                    raise ConfigError(f"--output={output_path}: would overwrite the --{role} file {path}")
    for path in roles["exclude"]:
        for role in ("labelled", "extra"):
            if any(_same_path(path, other) for other in roles[role]):
                raise ConfigError(f"{path}: is both an --exclude file and a --{role} file (every row would be dropped)")

    report = Report(SOURCES)
    file_rows: dict[str, int] = {}
    labelled = read_labelled(roles["labelled"], report, file_rows, text_field=config.text_field,
                             label_field=config.label_field)
    label_set = {label for _, label in labelled}
    if not labelled:
        raise DataError(f"no usable labelled row in {', '.join(roles['labelled'])} ({report.bad_count} bad rows"
                        f"{': ' + report.bad_rows[0] if report.bad_rows else ''})")
    extra, documents = read_extra(roles["extra"], report, file_rows, text_field=config.extra_text_field,
                                  label_field=config.extra_label_field, label_map=config.label_map,
                                  labels=label_set, min_words=config.min_words, max_words=config.max_words)
    excluded_keys = read_exclude(roles["exclude"], report, file_rows, text_field=config.text_field)

    kept: dict[str, list[tuple[str, str]]] = {source: [] for source in SOURCES}
    seen: dict[str, str] = {}  # normalised text -> the label kept for it
    excluded = collections.Counter()
    conflicts = collections.Counter()

    def offer(text: str, label: str, source: str) -> bool:
        text = clean_text(text)
        key = normalise(text)
        if not key:
            report.dropped[source]["empty_text"] += 1
            return False
        if key in excluded_keys:
            report.dropped[source]["eval_text"] += 1
            excluded[source] += 1
            return False
        if key in seen:
            report.dropped[source]["duplicate"] += 1
            conflicts[source] += seen[key] != label
            return False
        seen[key] = label
        kept[source].append((text, label))
        return True

    for text, label in labelled:
        offer(text, label, "labelled")
    for text, label in extra:
        offer(text, label, "extra")

    seeds = np.random.SeedSequence(config.seed).spawn(2)
    augmentation: dict[str, Any] = {"copies": config.augment_copies}
    if config.augment_copies > 0:
        augmentation.update(augment_all(list(kept["labelled"]), offer, report, np.random.default_rng(seeds[0]),
                                        preset=config.preset, copies=config.augment_copies,
                                        neighbours=config.neighbours, replace_prob=config.replace_prob,
                                        crop_prob=config.crop_prob, min_words=config.min_words))

    rows = [(text, label, source) for source in SOURCES for text, label in kept[source]]
    capped = 0
    if config.max_rows and len(rows) > config.max_rows:
        capped = len(rows) - config.max_rows
        rows = rows[: config.max_rows]
    if not rows:
        raise DataError(f"no row left to write: {sum(excluded.values())} matched --exclude texts, "
                        f"{report.bad_count} bad rows")
    order = np.random.default_rng(seeds[1]).permutation(len(rows))
    rows = [rows[i] for i in order]
    body = "".join(f"{text}\t{label}\t{source}\n" for text, label, source in rows)
    content = "\t".join(OUTPUT_COLUMNS) + "\n" + body

    directory = os.path.dirname(output_path)
    if directory:
        io_utils.makedirs(directory)
    atomic_write_text(output_path, content)

    counts = collections.Counter(source for _, _, source in rows)
    labels_by_source: dict[str, collections.Counter] = {source: collections.Counter() for source in SOURCES}
    for _, label, source in rows:
        labels_by_source[source][label] += 1
    summary: dict[str, Any] = {
        "output": output_path,
        "summary_file": summary_path,
        "output_sha256": hashlib.sha256(content.encode("utf-8")).hexdigest(),
        "rows": len(rows),
        "counts": {source: counts[source] for source in SOURCES},
        "labels": _sorted_counts(sum(labels_by_source.values(), collections.Counter())),
        "labels_by_source": {source: _sorted_counts(c) for source, c in labels_by_source.items()},
        "candidates": {source: report.candidates[source] for source in SOURCES},
        "dropped": {source: _sorted_counts(report.dropped[source]) for source in SOURCES},
        "dropped_max_rows": capped,
        "excluded": {source: excluded[source] for source in SOURCES},
        "duplicates_with_other_label": {source: conflicts[source] for source in SOURCES},
        "exclude_texts": len(excluded_keys),
        "extra_documents": documents,
        "bad_rows": {"count": report.bad_count, "by_reason": _sorted_counts(report.bad_by_reason),
                     "rows": report.bad_rows},
        "augmentation": augmentation,
        "inputs": [{"path": path, "role": role, "rows": file_rows.get(path, 0), "sha256": file_sha256(path)}
                   for role, paths in roles.items() for path in paths],
        "config": dataclasses.asdict(config),
        "seconds": round(time.time() - started, 2),
    }
    atomic_write_json(summary_path, summary)
    return summary


def _sorted_counts(counter: collections.Counter) -> dict[str, int]:
    return {key: counter[key] for key in sorted(counter)}



def iter_rows(path: str) -> Iterator[tuple[str, str, str]]:
    """Reads back a transfer set written by :func:`build_transfer_set`: ``(sentence, label, source)``.

    Raises:
        DataError: Not a transfer-set TSV (columns differ) or a malformed row.
    """
    source = readers.open_source(path, "tsv")
    if tuple(source.columns or ()) != OUTPUT_COLUMNS:
        raise DataError(f"{path}: not a transfer set (columns {', '.join(source.columns or ())}, expected "
                        f"{', '.join(OUTPUT_COLUMNS)})")
    for item in source:
        if isinstance(item, RowProblem):
            raise DataError(item.describe())
        yield item.fields[TEXT_COLUMN], item.fields[LABEL_COLUMN], item.fields[SOURCE_COLUMN]

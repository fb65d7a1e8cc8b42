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
import html
import json
import os
import re
import shutil
import tempfile
import time
import unicodedata
from collections.abc import Iterator
from typing import Any

import numpy as np

from llm_tf.data import readers
from llm_tf.data.rows import Row, RowProblem
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
#: The token embedding table among a checkpoint's backbone weights (``presets.backbone_weights``).
EMBEDDING_WEIGHT = "token_embedding/embeddings"
#: At most this many bad rows are listed (``file:line: reason``) in the summary; all are counted.
MAX_LISTED_BAD_ROWS = 100
#: Query rows per block when computing nearest neighbours (a block x candidates float32 matrix).
NEIGHBOUR_CHUNK = 512

_TAG = re.compile(r"<[^>]*>")
_BREAK = re.compile(r"<\s*br\s*/?\s*>", re.IGNORECASE)
# A sentence ends at . ! ? (optionally followed by a closing quote or bracket) and white space,
# or at a line break (a <br /> or a newline inside a quoted CSV field).
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|(?<=[.!?][\"')\]])\s+|\s*\n\s*")
# C0/C1 control characters and invisible format characters (zero-width spaces, BOM, bidi marks).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff]")
# A word with its leading and trailing punctuation: ("(", "film", "),").
_WORD = re.compile(r"^(\W*)(\w+)(\W*)$")


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


# -- text helpers ----------------------------------------------------------------------------


def parse_label_map(pairs: list[str], field: str = "--label_map", example: str = "positive:1,negative:0") -> dict[str, str]:
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


def normalise(text: str) -> str:
    """The key texts are deduplicated and excluded by: lower-cased, accents stripped, letters
    and digits only (white space and punctuation dropped, so tokenisations of one text agree).

    Example:
        >>> normalise("It's a  GREAT film!") == normalise("it 's a great film .")
        True
    """
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(ch for ch in decomposed if ch.isalnum())


def clean_text(text: str) -> str:
    """Collapses white space (tabs and newlines included) and control characters (such as the
    cp1252 dash U+0096 in IMDB reviews) to single spaces: a TSV-safe text."""
    return " ".join(_CONTROL.sub(" ", text).split())


def split_sentences(document: str, min_words: int = 1, max_words: int = 0) -> list[str]:
    """Splits a document into sentences after stripping HTML markup.

    ``<br />`` and newlines end a sentence, other tags become spaces, entities are unescaped;
    a sentence ends at ``.``, ``!`` or ``?`` (optionally followed by a closing quote or
    bracket) followed by white space.

    Args:
        document: The text, e.g. an IMDB review.
        min_words: Drop sentences with fewer words (white-space separated).
        max_words: Drop sentences with more words (0: no limit).

    Returns:
        The kept sentences, white space collapsed, in document order.

    Example:
        >>> split_sentences("Great film!<br /><br />I loved it. Really", min_words=2)
        ['Great film!', 'I loved it.']
    """
    kept = []
    for sentence in _sentences(document):
        words = len(sentence.split())
        if words >= min_words and (not max_words or words <= max_words):
            kept.append(sentence)
    return kept


def _sentences(document: str) -> list[str]:
    """All non-empty sentences of a document, markup stripped and white space collapsed."""
    text = html.unescape(_TAG.sub(" ", _BREAK.sub("\n", document)))
    return [s for s in (clean_text(part) for part in _SENTENCE_END.split(text)) if s]


def _strip_accents(text: str) -> str:
    return "".join(ch for ch in unicodedata.normalize("NFD", text) if unicodedata.category(ch) != "Mn")


# -- file access (tf.io.gfile, so that gs:// paths work) --------------------------------------


def _gfile():
    import tensorflow as tf

    return tf.io.gfile


def _is_remote(path: str) -> bool:
    return "://" in path


def _check_input(path: str, flag: str) -> None:
    gfile = _gfile()
    if not gfile.exists(path):
        raise DataError(f"{path}: no such file (--{flag})")
    if gfile.isdir(path):
        raise DataError(f"{path}: is a directory, expected a file (--{flag})")
    if gfile.stat(path).length == 0:
        raise DataError(f"{path}: file is empty (--{flag})")


def _write_text(path: str, text: str) -> None:
    """Writes ``path`` atomically: a local rename, or a GFile temporary renamed on remote storage."""
    if not _is_remote(path):
        atomic_write_text(path, text)
        return
    gfile = _gfile()
    tmp = f"{path}.partial-{os.getpid()}"
    with gfile.GFile(tmp, "w") as f:
        f.write(text)
    gfile.rename(tmp, path, overwrite=True)


class _Inputs:
    """Opens input files with the project readers; remote files are copied to a local temp dir first."""

    def __init__(self):
        self._tmp: str | None = None
        self._names: dict[str, str] = {}  # local copy -> the path the user gave

    def open(self, path: str, flag: str) -> readers.RowSource:
        _check_input(path, flag)
        local = path
        if _is_remote(path):
            if self._tmp is None:
                self._tmp = tempfile.mkdtemp(prefix="llm_transfer_set-")
            local = os.path.join(self._tmp, f"{len(self._names)}-{os.path.basename(path)}")
            _gfile().copy(path, local, overwrite=True)
            self._names[local] = path
        try:
            return readers.open_source(local)
        except DataError as e:
            raise DataError(f"{self.name(str(e))} (--{flag})") from None

    def name(self, text: str) -> str:
        """Replaces local copies' paths by the paths the user gave in ``text``."""
        for local, original in self._names.items():
            text = text.replace(local, original)
        return text

    def close(self) -> None:
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)


def _pick_field(source: readers.RowSource, path: str, alternatives: str, flag: str, role: str) -> str | None:
    """The first of the comma-list ``alternatives`` the file has (None when its columns are unknown)."""
    names = [name.strip() for name in alternatives.split(",") if name.strip()]
    if not names:
        raise ConfigError(f"--{flag} is empty")
    if source.columns is None:  # JSONL: checked row by row
        return None
    for name in names:
        if name in source.columns:
            return name
    raise DataError(f"{path}: missing {role} field '{' or '.join(names)}' (fields: {', '.join(source.columns)}; "
                    f"choose another with --{flag})")


# -- the build ---------------------------------------------------------------------------------


class _Report:
    """Counts and bad rows, per source; becomes part of the summary."""

    def __init__(self):
        self.candidates = collections.Counter()
        self.dropped = {source: collections.Counter() for source in SOURCES}
        self.bad_rows: list[str] = []
        self.bad_count = 0
        self.bad_by_reason = collections.Counter()

    def bad(self, path: str, line: int, reason: str, kind: str | None = None) -> None:
        self.bad_count += 1
        self.bad_by_reason[kind or reason.split(":")[0]] += 1
        if len(self.bad_rows) < MAX_LISTED_BAD_ROWS:
            self.bad_rows.append(f"{path}:{line}: {reason}")


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
    if _is_remote(a) or _is_remote(b):
        return a.rstrip("/") == b.rstrip("/")
    return os.path.realpath(a) == os.path.realpath(b)


def _records(inputs: _Inputs, path: str, kind: str, text_fields: str, label_fields: str, report: _Report,
             file_rows: dict[str, int]) -> Iterator[tuple[int, str, str]]:
    """Yields ``(line, text, label)`` of a ``kind`` (labelled/extra) file's usable rows; the
    others are bad rows in ``report``. Records the file's row count in ``file_rows``.

    Raises:
        DataError: The file has a header and no row.
    """
    source = inputs.open(path, kind)
    prefix = "" if kind == "labelled" else kind + "_"
    text_field = _pick_field(source, path, text_fields, prefix + "text_field", "text")
    label_field = _pick_field(source, path, label_fields, prefix + "label_field", "label")
    count = 0
    for item in source:
        count += 1
        if isinstance(item, RowProblem):
            report.bad(path, item.line, item.reason)
            continue
        text, label = _text_and_label(item, path, text_field, text_fields, label_field, label_fields, report)
        if label is not None:
            yield item.line, text, label
    if count == 0:
        raise DataError(f"{path}: no rows, only a header (--{kind})")
    file_rows[path] = count


def _read_labelled(inputs: _Inputs, paths: list[str], config: TransferSetConfig, report: _Report,
                   file_rows: dict[str, int]) -> list[tuple[str, str]]:
    rows = []
    for path in paths:
        for _, text, label in _records(inputs, path, "labelled", config.text_field, config.label_field, report,
                                       file_rows):
            report.candidates["labelled"] += 1
            if not text:
                report.dropped["labelled"]["empty_text"] += 1
                continue
            rows.append((text, label))
    return rows


def _text_and_label(row: Row, path: str, text_field: str | None, text_fields: str, label_field: str | None,
                    label_fields: str, report: _Report) -> tuple[str, str | None]:
    """The row's cleaned text and stripped label; label None (and a bad row) when unusable."""
    fields = row.fields
    if text_field is None:  # JSONL
        text_field = next((f.strip() for f in text_fields.split(",") if f.strip() in fields), text_fields.split(",")[0])
    if label_field is None:
        label_field = label_fields.split(",")[0].strip()
    text, label = fields.get(text_field), fields.get(label_field)
    if text is None:
        report.bad(path, row.line, f"missing field '{text_field}'", "missing field")
        return "", None
    if label is None:
        report.bad(path, row.line, f"missing field '{label_field}'", "missing field")
        return "", None
    if not isinstance(text, str) or isinstance(label, bool) or not isinstance(label, (str, int)):
        report.bad(path, row.line, f"field '{text_field}' or '{label_field}' is not a string", "not a string")
        return "", None
    label = str(label).strip()
    if not label:
        report.bad(path, row.line, f"empty label in field '{label_field}'", "empty label")
        return "", None
    if any(ch in label for ch in "\t\r\n"):
        report.bad(path, row.line, f"tab or line break in the label in field '{label_field}'", "bad label")
        return "", None
    return text, label


def _read_extra(inputs: _Inputs, paths: list[str], config: TransferSetConfig, labels: set[str], report: _Report,
                file_rows: dict[str, int]) -> tuple[list[tuple[str, str]], int]:
    rows, documents = [], 0
    mapped_names = ", ".join(sorted(config.label_map)) or "nothing"
    label_names = ", ".join(sorted(labels))
    for path in paths:
        for line, text, label in _records(inputs, path, "extra", config.extra_text_field, config.extra_label_field,
                                          report, file_rows):
            if label in config.label_map:
                label = str(config.label_map[label]).strip()
            elif label not in labels:
                report.bad(path, line, f"unmapped label '{label}' (--label_map maps {mapped_names}; the labelled "
                           f"files' labels are {label_names})", "unmapped label")
                continue
            documents += 1
            sentences = _sentences(text)
            if not sentences:
                report.candidates["extra"] += 1
                report.dropped["extra"]["empty_text"] += 1
            report.candidates["extra"] += len(sentences)
            for sentence in sentences:
                words = len(sentence.split())
                if words < config.min_words:
                    report.dropped["extra"]["too_few_words"] += 1
                elif words > config.max_words:
                    report.dropped["extra"]["too_many_words"] += 1
                else:
                    rows.append((sentence, label))
    return rows, documents


def _read_exclude(inputs: _Inputs, paths: list[str], config: TransferSetConfig, report: _Report,
                  file_rows: dict[str, int]) -> set[str]:
    keys: set[str] = set()
    for path in paths:
        source = inputs.open(path, "exclude")
        text_field = _pick_field(source, path, config.text_field, "text_field", "text")
        found = 0
        count = 0
        for item in source:
            count += 1
            if isinstance(item, RowProblem):
                # Its text cannot be told for sure: exclude the whole record and each of its fields.
                report.bad(path, item.line, item.reason)
                for part in [item.raw, *item.raw.split("\t")]:
                    if normalise(part):
                        keys.add(normalise(part))
                continue
            fields = item.fields
            name = text_field or next((f.strip() for f in config.text_field.split(",") if f.strip() in fields), None)
            value = fields.get(name) if name else None
            if not isinstance(value, str):
                report.bad(path, item.line, f"missing field '{config.text_field}'", "missing field")
                continue
            key = normalise(value)
            if key:
                keys.add(key)
                found += 1
        if found == 0:
            raise DataError(f"{path}: no text to exclude in field '{text_field or config.text_field}' (--exclude); "
                            "an eval file that yields nothing protects nothing")
        file_rows[path] = count
    return keys


# -- augmentation ------------------------------------------------------------------------------


@dataclasses.dataclass
class NeighbourTable:
    """Nearest whole-word tokens of a checkpoint, for the words of a corpus.

    Attributes:
        neighbours: Lookup form of a word (lower-cased and accent-stripped for an uncased
            checkpoint) -> its nearest whole-word tokens, nearest first.
        lower_case: Whether words are lower-cased before the lookup.
        candidates: How many whole-word tokens the vocabulary has.
    """

    neighbours: dict[str, list[str]]
    lower_case: bool
    candidates: int

    def lookup_form(self, word: str) -> str:
        """The vocabulary form of ``word``."""
        return _lookup_form(word, self.lower_case)


def _lookup_form(word: str, lower_case: bool) -> str:
    return _strip_accents(word.lower()) if lower_case else word


def is_whole_word_token(token: str) -> bool:
    """Whether a vocabulary entry is a whole word: alphabetic, not a ``##`` piece nor a ``[...]`` special."""
    return token.isalpha() and not token.startswith("##")


def load_token_embeddings(preset_name: str) -> tuple[np.ndarray, list[str], bool]:
    """Reads a checkpoint's token embedding table and WordPiece vocabulary.

    The weights come through :func:`llm_tf.models.presets.backbone_weights` (keras-hub's own
    loader, for Hugging Face and keras-hub checkpoints alike), the vocabulary through
    :func:`llm_tf.text.tokenizer.load_vocab`.

    Args:
        preset_name: A named preset, a Hugging Face BERT directory or a keras-hub preset directory.

    Returns:
        ``(embeddings [vocab, hidden] float32, vocabulary, lower_case)``.

    Raises:
        ConfigError: Not a usable BERT checkpoint (see :func:`llm_tf.models.presets.open_preset`).
        DataError: The weights do not load, or the table is smaller than the vocabulary.
    """
    from llm_tf.models import presets
    from llm_tf.text.tokenizer import load_vocab

    preset = presets.open_preset(preset_name, "--preset")
    vocab = load_vocab(preset.vocab_file)
    embeddings = presets.backbone_weights(preset)[EMBEDDING_WEIGHT]
    if embeddings.ndim != 2 or embeddings.shape[0] < len(vocab):
        raise DataError(f"{preset.directory}: the token embedding table has shape {embeddings.shape}, fewer rows "
                        f"than the {len(vocab)} tokens of {preset.vocab_file}")
    return embeddings[: len(vocab)].astype(np.float32), vocab, preset.lower_case


def nearest_neighbours(embeddings: np.ndarray, vocab: list[str], words: list[str], k: int,
                       lower_case: bool = True) -> NeighbourTable:
    """Finds each word's ``k`` nearest whole-word tokens by cosine similarity of token embeddings.

    Only ``words`` that are whole-word tokens of ``vocab`` get neighbours; candidates are the
    whole-word tokens (:func:`is_whole_word_token`) other than the word itself. Ties are
    broken by vocabulary id, so the table is deterministic.

    Args:
        embeddings: ``[len(vocab), hidden]`` token embedding table.
        vocab: The vocabulary, in id order.
        words: Corpus words in lookup form (any order, duplicates allowed).
        k: Neighbours per word.
        lower_case: Stored in the table (how corpus words are looked up).

    Returns:
        The :class:`NeighbourTable`.
    """
    candidate_ids = np.array([i for i, token in enumerate(vocab) if is_whole_word_token(token)], dtype=np.int64)
    index = {vocab[i]: i for i in candidate_ids}
    queries = sorted({w for w in words if w in index})
    table: dict[str, list[str]] = {}
    if not queries or len(candidate_ids) < 2:
        return NeighbourTable(table, lower_case, len(candidate_ids))
    matrix = embeddings[candidate_ids].astype(np.float32)
    matrix /= np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
    position = {int(token_id): p for p, token_id in enumerate(candidate_ids)}
    k = min(k, len(candidate_ids) - 1)
    for start in range(0, len(queries), NEIGHBOUR_CHUNK):
        chunk = queries[start: start + NEIGHBOUR_CHUNK]
        rows = np.array([position[index[w]] for w in chunk])
        scores = matrix[rows] @ matrix.T
        scores[np.arange(len(chunk)), rows] = -np.inf  # never the word itself
        top = np.argpartition(-scores, k, axis=1)[:, : k + 1]
        for i, word in enumerate(chunk):
            best = top[i]
            # Nearest first; equal scores by vocabulary id (argpartition's order is not stable).
            order = np.lexsort((candidate_ids[best], -scores[i, best]))
            table[word] = [vocab[candidate_ids[j]] for j in best[order][:k]]
    return NeighbourTable(table, lower_case, len(candidate_ids))


def _match_case(replacement: str, word: str) -> str:
    if len(word) > 1 and word.isupper():
        return replacement.upper()
    if word[:1].isupper():
        return replacement[:1].upper() + replacement[1:]
    return replacement


def augment(text: str, table: NeighbourTable, rng: np.random.Generator, replace_prob: float, crop_prob: float,
            min_words: int) -> tuple[str, int, bool]:
    """One augmented copy of ``text``: embedding-neighbour word replacement, then an optional crop.

    Args:
        text: A sentence (white-space separated words; punctuation around a word is kept).
        table: Neighbours of the replaceable words.
        rng: The random generator (consumed identically for equal inputs).
        replace_prob: Probability that a replaceable word is replaced.
        crop_prob: Probability of cropping to a contiguous span of at least
            ``max(min_words, ceil(words / 2))`` words (fewer words than the original).
        min_words: See ``crop_prob``.

    Returns:
        ``(copy, number of words replaced, whether it was cropped)``.
    """
    words = text.split()
    draws = rng.random(len(words))
    picks = rng.integers(0, 1 << 30, len(words))
    replaced = 0
    for i, word in enumerate(words):
        if draws[i] >= replace_prob:
            continue
        match = _WORD.match(word)
        if not match or not match.group(2).isalpha():
            continue
        lead, core, trail = match.groups()
        options = table.neighbours.get(table.lookup_form(core))
        if not options:
            continue
        words[i] = lead + _match_case(options[picks[i] % len(options)], core) + trail
        replaced += 1
    cropped = False
    shortest = max(min_words, (len(words) + 1) // 2)
    if rng.random() < crop_prob and len(words) > shortest:
        length = int(rng.integers(shortest, len(words)))  # shortest .. len - 1
        start = int(rng.integers(0, len(words) - length + 1))
        words = words[start: start + length]
        cropped = True
    return " ".join(words), replaced, cropped


# -- the public entry point --------------------------------------------------------------------


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
    roles = {"labelled": readers.expand_patterns(config.labelled, "labelled"), "extra": readers.expand_patterns(config.extra, "extra"),
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

    report = _Report()
    file_rows: dict[str, int] = {}
    inputs = _Inputs()
    try:
        labelled = _read_labelled(inputs, roles["labelled"], config, report, file_rows)
        label_set = {label for _, label in labelled}
        if not labelled:
            raise DataError(f"no usable labelled row in {', '.join(roles['labelled'])} ({report.bad_count} bad rows"
                            f"{': ' + report.bad_rows[0] if report.bad_rows else ''})")
        extra, documents = _read_extra(inputs, roles["extra"], config, label_set, report, file_rows)
        excluded_keys = _read_exclude(inputs, roles["exclude"], config, report, file_rows)
    except DataError as e:
        raise DataError(inputs.name(str(e))) from None
    finally:
        inputs.close()
    report.bad_rows = [inputs.name(line) for line in report.bad_rows]

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
        augmentation.update(_augment_all(config, list(kept["labelled"]), offer, report, np.random.default_rng(seeds[0])))

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
        _gfile().makedirs(directory)
    _write_text(output_path, content)

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
    if _is_remote(summary_path):
        _write_text(summary_path, json.dumps(summary, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    else:
        atomic_write_json(summary_path, summary)
    return summary


def _sorted_counts(counter: collections.Counter) -> dict[str, int]:
    return {key: counter[key] for key in sorted(counter)}


def _augment_all(config: TransferSetConfig, labelled: list[tuple[str, str]], offer, report: _Report,
                 rng: np.random.Generator) -> dict[str, Any]:
    embeddings, vocab, lower_case = load_token_embeddings(config.preset)
    sources = labelled  # the kept labelled rows: never a copy of an excluded or duplicate one
    short = sum(1 for text, _ in sources if len(text.split()) < config.min_words)
    sources = [(text, label) for text, label in sources if len(text.split()) >= config.min_words]
    corpus_words = set()
    for text, _ in sources:
        for word in text.split():
            match = _WORD.match(word)
            if match and match.group(2).isalpha():
                corpus_words.add(_lookup_form(match.group(2), lower_case))
    table = nearest_neighbours(embeddings, vocab, sorted(corpus_words), config.neighbours, lower_case)
    replaced_words = cropped = 0
    for text, label in sources:
        source_key = normalise(text)
        for _ in range(config.augment_copies):
            copy, replaced, was_cropped = augment(text, table, rng, config.replace_prob, config.crop_prob,
                                                  config.min_words)
            replaced_words += replaced
            cropped += was_cropped
            report.candidates["augmented"] += 1
            if normalise(copy) == source_key:
                report.dropped["augmented"]["same_as_source"] += 1
                continue
            offer(copy, label, "augmented")
    return {
        "copies": config.augment_copies,
        "preset": config.preset,
        "sources": len(sources),
        "sources_too_short": short,
        "corpus_words": len(corpus_words),
        "replaceable_words": len(table.neighbours),
        "candidate_tokens": table.candidates,
        "replaced_words": replaced_words,
        "cropped": cropped,
    }


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

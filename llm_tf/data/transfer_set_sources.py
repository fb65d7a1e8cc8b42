"""Reading a transfer set's inputs: the labelled, extra and exclude files (:mod:`llm_tf.data.transfer_set`).

Text helpers (the normalised deduplication key, white-space cleaning, splitting documents into
sentences), input files opened with the project readers (which stream ``gs://`` files through
``tf.io.gfile``) and the three readers, which count candidates, drops and bad rows in a
:class:`Report`.
"""

import collections
import html
import re
import unicodedata
from collections.abc import Iterator

from llm_tf import io_utils
from llm_tf.data import readers
from llm_tf.data.rows import Row, RowProblem
from llm_tf.errors import ConfigError, DataError

#: At most this many bad rows are listed (``file:line: reason``) in the summary; all are counted.
MAX_LISTED_BAD_ROWS = 100

_TAG = re.compile(r"<[^>]*>")
_BREAK = re.compile(r"<\s*br\s*/?\s*>", re.IGNORECASE)
# A sentence ends at . ! ? (optionally followed by a closing quote or bracket) and white space,
# or at a line break (a <br /> or a newline inside a quoted CSV field).
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|(?<=[.!?][\"')\]])\s+|\s*\n\s*")
# C0/C1 control characters and invisible format characters (zero-width spaces, BOM, bidi marks).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff]")


# -- text helpers ----------------------------------------------------------------------------


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


# -- file access ------------------------------------------------------------------------------


def open_input(path: str, flag: str) -> readers.RowSource:
    """Opens an input file (local or ``gs://``) with the project readers; errors name ``--flag``.

    Raises:
        ConfigError: A scheme TensorFlow cannot open.
        DataError: The file is missing, a directory, empty or unreadable.
    """
    io_utils.check_path(path, f"--{flag}")
    try:
        return readers.open_source(path)
    except DataError as e:
        raise DataError(f"{e} (--{flag})") from None


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


# -- the readers -------------------------------------------------------------------------------


class Report:
    """Counts and bad rows, per source (``sources``: the values of the ``source`` column); part of the summary."""

    def __init__(self, sources: tuple[str, ...]):
        self.candidates = collections.Counter()
        self.dropped = {source: collections.Counter() for source in sources}
        self.bad_rows: list[str] = []
        self.bad_count = 0
        self.bad_by_reason = collections.Counter()

    def bad(self, path: str, line: int, reason: str, kind: str | None = None) -> None:
        self.bad_count += 1
        self.bad_by_reason[kind or reason.split(":")[0]] += 1
        if len(self.bad_rows) < MAX_LISTED_BAD_ROWS:
            self.bad_rows.append(f"{path}:{line}: {reason}")


def _records(path: str, kind: str, text_fields: str, label_fields: str, report: Report,
             file_rows: dict[str, int]) -> Iterator[tuple[int, str, str]]:
    """Yields ``(line, text, label)`` of a ``kind`` (labelled/extra) file's usable rows; the
    others are bad rows in ``report``. Records the file's row count in ``file_rows``.

    Raises:
        DataError: The file has a header and no row.
    """
    source = open_input(path, kind)
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


def read_labelled(paths: list[str], report: Report, file_rows: dict[str, int], *, text_field: str,
                  label_field: str) -> list[tuple[str, str]]:
    """``(text, label)`` of the labelled files' usable rows, in file order (fields: comma lists of alternatives)."""
    rows = []
    for path in paths:
        for _, text, label in _records(path, "labelled", text_field, label_field, report, file_rows):
            report.candidates["labelled"] += 1
            if not text:
                report.dropped["labelled"]["empty_text"] += 1
                continue
            rows.append((text, label))
    return rows


def _text_and_label(row: Row, path: str, text_field: str | None, text_fields: str, label_field: str | None,
                    label_fields: str, report: Report) -> tuple[str, str | None]:
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


def read_extra(paths: list[str], report: Report, file_rows: dict[str, int], *, text_field: str,
               label_field: str, label_map: dict[str, str], labels: set[str], min_words: int,
               max_words: int) -> tuple[list[tuple[str, str]], int]:
    """``(sentence, label)`` of the extra documents' sentences of ``min_words`` to ``max_words`` words, and
    the number of documents used; a label goes through ``label_map`` or must be one of ``labels``."""
    rows, documents = [], 0
    mapped_names = ", ".join(sorted(label_map)) or "nothing"
    label_names = ", ".join(sorted(labels))
    for path in paths:
        for line, text, label in _records(path, "extra", text_field, label_field, report, file_rows):
            if label in label_map:
                label = str(label_map[label]).strip()
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
                if words < min_words:
                    report.dropped["extra"]["too_few_words"] += 1
                elif words > max_words:
                    report.dropped["extra"]["too_many_words"] += 1
                else:
                    rows.append((sentence, label))
    return rows, documents


def read_exclude(paths: list[str], report: Report, file_rows: dict[str, int], *,
                 text_field: str) -> set[str]:
    """The normalised keys of the exclude files' texts (a malformed record: its raw text and each field).

    Raises:
        DataError: A file yields no text to exclude.
    """
    keys: set[str] = set()
    for path in paths:
        source = open_input(path, "exclude")
        field = _pick_field(source, path, text_field, "text_field", "text")
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
            name = field or next((f.strip() for f in text_field.split(",") if f.strip() in fields), None)
            value = fields.get(name) if name else None
            if not isinstance(value, str):
                report.bad(path, item.line, f"missing field '{text_field}'", "missing field")
                continue
            key = normalise(value)
            if key:
                keys.add(key)
                found += 1
        if found == 0:
            raise DataError(f"{path}: no text to exclude in field '{field or text_field}' (--exclude); "
                            "an eval file that yields nothing protects nothing")
        file_rows[path] = count
    return keys

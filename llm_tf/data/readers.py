"""Streaming readers for TSV, CSV, JSONL, plain text and CoNLL files.

Each reader yields :class:`~llm_tf.data.rows.Row` for a good record and
:class:`~llm_tf.data.rows.RowProblem` for a bad one (wrong column count, bad JSON, invalid
UTF-8, ...), one record at a time: no file is loaded whole. Problems with the file itself
(missing, empty, no header) raise :class:`~llm_tf.errors.DataError` at once. A ``gs://`` (any
``scheme://``) path is streamed through ``tf.io.gfile``; a local one through ``open``.

Example:
    >>> source = open_source("train.tsv")
    >>> source.columns
    ('sentence', 'label')
    >>> for item in source:
    ...     print(item)
"""

import csv
import gzip
import io
import json
import os
import re
from collections.abc import Iterator, Sequence

from llm_tf import io_utils
from llm_tf.data.rows import Row, RowProblem, has_invalid_utf8
from llm_tf.errors import DataError

FORMATS = ("tsv", "csv", "jsonl", "text", "conll")
TEXT_MODES = ("line", "document")

_EXTENSIONS = {
    ".tsv": "tsv",
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".txt": "text",
    ".text": "text",
    ".conll": "conll",
    ".conllu": "conll",
}

# CoNLL column names by column count; the last column is always the tag.
_CONLL_COLUMNS = {
    1: ("tokens",),
    2: ("tokens", "tags"),
    3: ("tokens", "pos", "tags"),
    4: ("tokens", "pos", "chunk", "tags"),
}

# The last column of a CoNLL line: an IOB/IOBES tag.
_TAG = re.compile(r"^(O|[BIES]-\S+)$")

# Increase the csv module's per-field limit (128 KiB) so that long documents fit.
csv.field_size_limit(64 * 1024 * 1024)


def expand_patterns(patterns: Sequence[str], flag: str = "") -> list[str]:
    """Expands glob patterns (``*?[``) through ``tf.io.gfile`` (local or bucket paths), sorted;
    other paths are kept as given.

    Raises:
        DataError: A pattern matches no file (the message names ``--flag`` when given).
    """
    paths = []
    for pattern in patterns:
        if any(ch in pattern for ch in "*?["):
            import tensorflow as tf

            if io_utils.is_remote(pattern):
                io_utils.check_path(pattern, f"--{flag}" if flag else "path")
            with io_utils.storage_errors(pattern):
                matched = sorted(tf.io.gfile.glob(pattern))
            if not matched:
                raise DataError(f"{pattern}: no file matches" + (f" (--{flag})" if flag else ""))
            paths.extend(matched)
        else:
            paths.append(pattern)
    return paths


def detect_format(path: str, fmt: str = "auto") -> str:
    """Returns the input format of ``path``.

    Args:
        path: The input file.
        fmt: ``auto`` (by extension, with a look at the content for ``.txt``) or one of
            :data:`FORMATS`.

    Raises:
        DataError: ``fmt`` is unknown, or ``auto`` cannot tell from the extension.
    """
    if fmt != "auto":
        if fmt not in FORMATS:
            raise DataError(f"unknown format '{fmt}' (expected auto or one of: {', '.join(FORMATS)})")
        return fmt
    base = path[:-3] if path.endswith(".gz") else path
    ext = os.path.splitext(base)[1].lower()
    if ext in _EXTENSIONS:
        detected = _EXTENSIONS[ext]
        if detected == "text" and _looks_like_conll(path):
            return "conll"
        return detected
    raise DataError(f"{path}: cannot tell the format from the extension '{ext}' (pass --format={'|'.join(FORMATS)})")


def _looks_like_conll(path: str) -> bool:
    """True when a ``.txt`` file starts like CoNLL: ``-DOCSTART-``, or every line ends in a tag."""
    try:
        with _open_stream(path, "utf-8", "replace", None, gunzip=False) as f:
            head = [line.rstrip("\r\n") for _, line in zip(range(20), f)]
    except (OSError, DataError):  # a remote file system's error is a DataError
        return False
    if any(line.startswith("-DOCSTART-") for line in head):
        return True
    non_blank = [line.split() for line in head if line.strip()]
    return bool(non_blank) and all(2 <= len(parts) <= 4 and _TAG.match(parts[-1]) for parts in non_blank)


def _check_file(path: str) -> None:
    if io_utils.is_remote(path):
        _check_remote_file(path)
        return
    if not os.path.exists(path):
        raise DataError(f"{path}: no such file")
    if os.path.isdir(path):
        raise DataError(f"{path}: is a directory, expected a file")
    if os.path.getsize(path) == 0:
        raise DataError(f"{path}: file is empty")


def _check_remote_file(path: str) -> None:
    import tensorflow as tf

    io_utils.check_path(path)
    with io_utils.storage_errors(path):
        if not tf.io.gfile.exists(path):
            raise DataError(f"{path}: no such file")
        if tf.io.gfile.isdir(path):
            raise DataError(f"{path}: is a directory, expected a file")
        if tf.io.gfile.stat(path).length == 0:
            raise DataError(f"{path}: file is empty")


class _GFileReader(io.RawIOBase):
    """A ``tf.io.gfile.GFile`` opened ``rb`` as a raw stream (GFile lacks ``readable``/``readinto``);
    a storage error while reading becomes a one-line DataError."""

    def __init__(self, path: str):
        import tensorflow as tf

        self._path = path
        self._file = tf.io.gfile.GFile(path, "rb")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        with io_utils.storage_errors(self._path):
            data = self._file.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._file.close()
        super().close()


def _open_text(path: str, newline: str | None = None) -> io.TextIOBase:
    """Opens ``path`` as UTF-8; invalid bytes become surrogates so rows can name them."""
    _check_file(path)
    return _open_stream(path, "utf-8-sig", "surrogateescape", newline, gunzip=path.endswith(".gz"))


def _open_stream(path: str, encoding: str, errors: str, newline: str | None, gunzip: bool) -> io.TextIOBase:
    """A text stream over a local (``open``) or remote (``tf.io.gfile``) file, gunzipped if asked."""
    if not io_utils.is_remote(path):
        if gunzip:
            return io.TextIOWrapper(gzip.open(path, "rb"), encoding=encoding, errors=errors, newline=newline)
        return open(path, encoding=encoding, errors=errors, newline=newline)
    raw = io.BufferedReader(_GFileReader(path), buffer_size=1 << 20)
    if gunzip:
        raw = _OwningGzipFile(fileobj=raw, mode="rb")
    return io.TextIOWrapper(raw, encoding=encoding, errors=errors, newline=newline)


class _OwningGzipFile(gzip.GzipFile):
    """A GzipFile that also closes the stream it reads (GzipFile leaves a given ``fileobj`` open)."""

    def close(self) -> None:
        stream = self.fileobj
        try:
            super().close()
        finally:
            if stream is not None:
                stream.close()


class RowSource:
    """An input file opened for streaming, with its column names when it has a header.

    Iterate over it to get rows and problems. Iteration re-opens the file, so a source can be
    read more than once.

    Attributes:
        path: The file.
        format: One of :data:`FORMATS`.
        columns: Column names from the header (TSV/CSV), the CoNLL columns, or None (JSONL).
    """

    def __init__(self, path: str, fmt: str = "auto", column_names: Sequence[str] | None = None,
                 text_mode: str = "line"):
        self.path = path
        self.format = detect_format(path, fmt)
        if text_mode not in TEXT_MODES:
            raise DataError(f"unknown text mode '{text_mode}' (expected one of: {', '.join(TEXT_MODES)})")
        self.text_mode = text_mode
        self._column_names = tuple(column_names) if column_names else None
        self.columns = self._read_columns()

    def _read_columns(self) -> tuple[str, ...] | None:
        if self.format in ("tsv", "csv"):
            if self._column_names:
                _check_file(self.path)
                return self._column_names
            with _open_text(self.path, newline="") as f:
                header = _first_record(f, self.format)
            if header is None or not any(name.strip() for name in header):
                raise DataError(f"{self.path}:1: missing header line (or pass column names)")
            if has_invalid_utf8("".join(header)):
                raise DataError(f"{self.path}:1: invalid UTF-8 in the header")
            names = tuple(name.strip() for name in header)
            duplicates = sorted({n for n in names if names.count(n) > 1})
            if duplicates:
                raise DataError(f"{self.path}:1: duplicate column name(s) in header: {', '.join(duplicates)}")
            return names
        if self.format == "text":
            _check_file(self.path)
            return ("text",)
        if self.format == "conll":
            _check_file(self.path)
            return self._column_names  # None until the first token line tells the width
        _check_file(self.path)
        return None

    def __iter__(self) -> Iterator[Row | RowProblem]:
        reader = {
            "tsv": self._iter_delimited,
            "csv": self._iter_delimited,
            "jsonl": self._iter_jsonl,
            "text": self._iter_text,
            "conll": self._iter_conll,
        }[self.format]
        return reader()

    # -- TSV / CSV ---------------------------------------------------------------------

    def _iter_delimited(self) -> Iterator[Row | RowProblem]:
        columns = self.columns
        with _open_text(self.path, newline="") as f:
            if self.format == "tsv":
                records = _tsv_records(f)
            else:
                records = _csv_records(f)
            first = True
            for line, values, raw in records:
                if first and not self._column_names:
                    first = False
                    continue  # the header
                first = False
                if isinstance(values, str):  # a parse error message
                    yield RowProblem(self.path, line, values, raw)
                    continue
                if values == [] or values == [""]:
                    yield RowProblem(self.path, line, "blank line", raw)
                    continue
                if len(values) != len(columns):
                    yield RowProblem(
                        self.path, line, f"wrong column count: expected {len(columns)}, got {len(values)}", raw
                    )
                    continue
                bad = [name for name, value in zip(columns, values) if has_invalid_utf8(value)]
                if bad:
                    yield RowProblem(self.path, line, f"invalid UTF-8 in column '{bad[0]}'", raw)
                    continue
                yield Row(self.path, line, dict(zip(columns, values)), raw)

    # -- JSONL -------------------------------------------------------------------------

    def _iter_jsonl(self) -> Iterator[Row | RowProblem]:
        with _open_text(self.path) as f:
            for line_no, line in enumerate(f, start=1):
                raw = line.rstrip("\r\n")
                if not raw.strip():
                    yield RowProblem(self.path, line_no, "blank line", raw)
                    continue
                if has_invalid_utf8(raw):
                    yield RowProblem(self.path, line_no, "invalid UTF-8", raw)
                    continue
                try:
                    value = json.loads(raw)
                except json.JSONDecodeError as e:
                    yield RowProblem(self.path, line_no, f"bad JSON: {e.msg} at column {e.colno}", raw)
                    continue
                if not isinstance(value, dict):
                    yield RowProblem(self.path, line_no, f"bad JSON: expected an object, got {type(value).__name__}",
                                     raw)
                    continue
                yield Row(self.path, line_no, value, raw)

    # -- plain text --------------------------------------------------------------------

    def _iter_text(self) -> Iterator[Row | RowProblem]:
        with _open_text(self.path) as f:
            if self.text_mode == "line":
                for line_no, line in enumerate(f, start=1):
                    text = line.rstrip("\r\n")
                    if not text.strip():
                        continue  # blank lines separate nothing in line mode; they are not examples
                    yield _text_row(self.path, line_no, text)
                return
            start, lines = 0, []
            for line_no, line in enumerate(f, start=1):
                text = line.rstrip("\r\n")
                if text.strip():
                    if not lines:
                        start = line_no
                    lines.append(text)
                elif lines:
                    yield _text_row(self.path, start, "\n".join(lines))
                    lines = []
            if lines:
                yield _text_row(self.path, start, "\n".join(lines))

    # -- CoNLL -------------------------------------------------------------------------

    def _iter_conll(self) -> Iterator[Row | RowProblem]:
        columns = self._column_names
        with _open_text(self.path) as f:
            start, rows, raw_lines, problem = 0, [], [], None
            for line_no, line in enumerate(f, start=1):
                text = line.rstrip("\r\n")
                if text.startswith("-DOCSTART-") or not text.strip():
                    if raw_lines:
                        yield problem or Row(self.path, start, _conll_fields(columns, rows), "\n".join(raw_lines))
                    start, rows, raw_lines, problem = 0, [], [], None
                    continue
                if not raw_lines:
                    start = line_no
                raw_lines.append(text)
                if problem:
                    continue
                parts = text.split()
                if columns is None:
                    if len(parts) not in _CONLL_COLUMNS:
                        problem = RowProblem(
                            self.path, line_no, f"expected 1 to 4 whitespace-separated columns, got {len(parts)}", text
                        )
                        continue
                    columns = _CONLL_COLUMNS[len(parts)]
                    self.columns = columns
                if has_invalid_utf8(text):
                    problem = RowProblem(self.path, line_no, "invalid UTF-8", text)
                elif len(parts) != len(columns):
                    problem = RowProblem(
                        self.path, line_no, f"wrong column count: expected {len(columns)}, got {len(parts)}", text
                    )
                else:
                    rows.append(parts)
            if raw_lines:
                yield problem or Row(self.path, start, _conll_fields(columns, rows), "\n".join(raw_lines))


def _text_row(path: str, line: int, text: str) -> Row | RowProblem:
    if has_invalid_utf8(text):
        return RowProblem(path, line, "invalid UTF-8", text)
    return Row(path, line, {"text": text}, text)


def _conll_fields(columns: Sequence[str], rows: list[list[str]]) -> dict:
    return {name: [r[i] for r in rows] for i, name in enumerate(columns)}


def _first_record(f, fmt: str) -> list[str] | None:
    for _, values, _ in _tsv_records(f) if fmt == "tsv" else _csv_records(f):
        return values if isinstance(values, list) else None
    return None


def _tsv_records(f) -> Iterator[tuple[int, list[str] | str, str]]:
    """Yields (line, fields, raw) for each line of a TSV file (no quoting, as in GLUE)."""
    for line_no, line in enumerate(f, start=1):
        raw = line.rstrip("\r\n")
        yield line_no, raw.split("\t") if raw else [], raw


def _csv_records(f) -> Iterator[tuple[int, list[str] | str, str]]:
    """Yields (start line, fields or an error message, raw) for each CSV record.

    Quoted fields may hold commas, doubled quotes and newlines; the line reported is the one
    where the record starts.
    """
    reader = csv.reader(f, strict=True)
    while True:
        start = reader.line_num + 1
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            yield start, f"bad CSV: {e}", ""
            continue
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="").writerow(values)
        yield start, values, buffer.getvalue()


def open_source(path: str, fmt: str = "auto", column_names: Sequence[str] | None = None,
                text_mode: str = "line") -> RowSource:
    """Opens an input file for streaming; see :class:`RowSource`.

    Args:
        path: The input file (``.gz`` is decompressed on the fly).
        fmt: ``auto`` or one of :data:`FORMATS`.
        column_names: Names for TSV/CSV files without a header, or for CoNLL columns.
        text_mode: For plain text: ``line`` (one example a line) or ``document`` (examples
            separated by blank lines).

    Raises:
        DataError: The file is missing, empty, or has no usable header.
    """
    return RowSource(path, fmt, column_names, text_mode)

"""Turns reader rows into task examples with canonical feature names, checking each one.

Canonical features (the names used in TFRecords, statistics and schemas):

* ``classification``: ``text``, optional ``text_pair``, ``label`` (the label name, a string).
* ``token_classification``: ``tokens`` and ``tags`` (lists of strings, same length).
* ``text`` (unlabelled, for language-model pre-training): ``text``.
"""

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from llm_tf.data.rows import Row, RowProblem, has_invalid_utf8
from llm_tf.errors import DataError

TASKS = ("classification", "token_classification", "text")


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """Which source fields feed which canonical features, and the per-row rules.

    Attributes:
        task: One of :data:`TASKS`.
        text_field: Source field holding the text (classification, text); a comma list gives
            alternatives, of which each file uses the first it has.
        text_pair_field: Source field holding the second text of a pair, or None.
        label_field: Source field holding the label (classification).
        tokens_field: Source field holding the words (token classification).
        tags_field: Source field holding the word tags (token classification).
        labels: The label (or tag) vocabulary when given; rows with other labels are bad.
            None infers the vocabulary from the data.
        min_text_chars: Texts shorter than this (after stripping) are bad rows.
        max_text_chars: Texts longer than this are bad rows (0 = no limit).
    """

    task: str = "classification"
    text_field: str = "text"
    text_pair_field: str | None = None
    label_field: str | None = "label"
    tokens_field: str = "tokens"
    tags_field: str = "tags"
    labels: tuple[str, ...] | None = None
    min_text_chars: int = 1
    max_text_chars: int = 0

    def __post_init__(self):
        if self.task not in TASKS:
            raise DataError(f"unknown task '{self.task}' (expected one of: {', '.join(TASKS)})")
        if self.task == "classification" and not self.label_field:
            raise DataError("classification needs a label field (--label_field)")
        if self.min_text_chars < 0 or self.max_text_chars < 0:
            raise DataError("--min_text_chars and --max_text_chars must be >= 0")

    @property
    def text_fields(self) -> tuple[str, ...]:
        """Alternatives for the text field (``--text_field=sentence,review``): each file uses the
        first one it has, so one corpus can mix files whose text lives in different columns."""
        return tuple(name.strip() for name in self.text_field.split(",") if name.strip())

    @property
    def source_fields(self) -> tuple[str, ...]:
        """The source fields this task reads (besides the text, checked by ``check_columns``)."""
        if self.task == "token_classification":
            return (self.tokens_field, self.tags_field)
        if self.task == "text":
            return ()
        return tuple(f for f in (self.text_pair_field, self.label_field) if f)

    @property
    def has_pair(self) -> bool:
        """True for paired-text classification."""
        return self.task == "classification" and bool(self.text_pair_field)

    @property
    def features(self) -> list[str]:
        """The canonical features of this task's examples, in record order."""
        if self.task == "token_classification":
            return ["tokens", "tags"]
        if self.task == "text":
            return ["text"]
        return ["text", "text_pair", "label"] if self.has_pair else ["text", "label"]

    @property
    def label_feature(self) -> str | None:
        """The canonical feature holding labels (``label`` or ``tags``), or None."""
        return {"classification": "label", "token_classification": "tags"}.get(self.task)

    def check_columns(self, source: str, columns: Sequence[str] | None) -> None:
        """Raises DataError when a file with known columns lacks a field this task reads.

        Args:
            source: The file, for the message.
            columns: The file's columns (None when unknown, e.g. JSONL).
        """
        if columns is None:
            return
        missing = [f for f in self.source_fields if f not in columns]
        if self.task != "token_classification" and not any(f in columns for f in self.text_fields):
            if not (self.task == "text" and self.tokens_field in columns):  # CoNLL words as text
                missing.insert(0, "' or '".join(self.text_fields))
        if missing:
            raise DataError(
                f"{source}: missing column '{missing[0]}' (columns: {', '.join(columns)}; "
                f"choose others with --text_field/--text_pair_field/--label_field)"
            )


def to_example(row: Row, spec: TaskSpec) -> dict[str, Any] | RowProblem:
    """Checks ``row`` against ``spec`` and returns its canonical example, or the problem.

    Args:
        row: A row from a reader.
        spec: The task and its rules.

    Returns:
        A dict of canonical features, or a :class:`RowProblem` naming the field and reason.
    """
    fields = row.fields
    if spec.task == "token_classification":
        return _token_example(row, spec)
    example: dict[str, Any] = {}
    text_field = next((f for f in spec.text_fields if f in fields), spec.text_fields[0])
    if spec.task == "text" and text_field not in fields and isinstance(fields.get(spec.tokens_field), list):
        fields = {**fields, text_field: " ".join(fields[spec.tokens_field])}  # a CoNLL sentence as text
    names = [("text", text_field)]
    if spec.has_pair:
        names.append(("text_pair", spec.text_pair_field))
    for feature, field in names:
        value = _get(fields, field)
        if isinstance(value, RowProblem) or value is None:
            return _problem(row, f"missing field '{field}'")
        if not isinstance(value, str):
            return _problem(row, f"field '{field}' must be a string, got {type(value).__name__}")
        if has_invalid_utf8(value):
            return _problem(row, f"invalid UTF-8 in field '{field}'")
        stripped = value.strip()
        if not stripped:
            return _problem(row, f"empty text in field '{field}'")
        if len(stripped) < spec.min_text_chars:
            return _problem(
                row, f"text too short in field '{field}': {len(stripped)} chars "
                f"< --min_text_chars={spec.min_text_chars}"
            )
        if spec.max_text_chars and len(stripped) > spec.max_text_chars:
            return _problem(
                row, f"text too long in field '{field}': {len(stripped)} chars > --max_text_chars={spec.max_text_chars}"
            )
        example[feature] = stripped
    if spec.task == "classification":
        label = _get(fields, spec.label_field)
        if label is None:
            return _problem(row, f"missing field '{spec.label_field}'")
        if isinstance(label, bool) or not isinstance(label, (str, int)):
            return _problem(row, f"field '{spec.label_field}' must be a string or integer, got {type(label).__name__}")
        label = str(label).strip()
        if not label:
            return _problem(row, f"empty label in field '{spec.label_field}'")
        if has_invalid_utf8(label):
            return _problem(row, f"invalid UTF-8 in field '{spec.label_field}'")
        if spec.labels is not None and label not in spec.labels:
            return _problem(row, f"unknown label '{label}' in field '{spec.label_field}' "
                                 f"(expected one of: {_short(spec.labels)})")
        example["label"] = label
    return example


def _token_example(row: Row, spec: TaskSpec) -> dict[str, Any] | RowProblem:
    tokens = _get(row.fields, spec.tokens_field)
    tags = _get(row.fields, spec.tags_field)
    if tokens is None:
        return _problem(row, f"missing field '{spec.tokens_field}'")
    if tags is None:
        return _problem(row, f"missing field '{spec.tags_field}'")
    for name, value in ((spec.tokens_field, tokens), (spec.tags_field, tags)):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            return _problem(row, f"field '{name}' must be a list of strings")
    if not tokens:
        return _problem(row, f"empty token list in field '{spec.tokens_field}'")
    if len(tokens) != len(tags):
        return _problem(row, f"{len(tokens)} tokens but {len(tags)} tags")
    if any(has_invalid_utf8(t) for t in tokens + tags):
        return _problem(row, "invalid UTF-8")
    if spec.labels is not None:
        unknown = [t for t in tags if t not in spec.labels]
        if unknown:
            return _problem(row, f"unknown tag '{unknown[0]}' (expected one of: {_short(spec.labels)})")
    return {"tokens": list(tokens), "tags": list(tags)}


def _get(fields: Mapping[str, Any], name: str | None):
    return None if name is None else fields.get(name)


def _problem(row: Row, reason: str) -> RowProblem:
    return RowProblem(row.source, row.line, reason, row.raw)


def _short(values: Sequence[str], limit: int = 10) -> str:
    shown = ", ".join(values[:limit])
    return shown + (f", ... ({len(values)} in all)" if len(values) > limit else "")


def example_key(example: Mapping[str, Any]) -> str:
    """Returns the content key of an example: used for hash splits and duplicate counts."""
    if "tokens" in example:
        return " ".join(example["tokens"])
    if "text_pair" in example:
        return example["text"] + "\t" + example["text_pair"]
    return example["text"]

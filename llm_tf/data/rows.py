"""The two things a reader yields: a :class:`Row` of named fields, or a :class:`RowProblem`."""

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

_SURROGATE = re.compile("[\udc80-\udcff]")


@dataclasses.dataclass(frozen=True)
class Row:
    """One record read from a source, before it is checked against a task.

    Attributes:
        source: The file path (or ``tfds:name/split``) it came from.
        line: 1-based line number where the record starts.
        fields: Field name to value (str, or list of str for CoNLL columns).
        raw: The record as it appeared in the source, for reject files.
    """

    source: str
    line: int
    fields: Mapping[str, Any]
    raw: str


@dataclasses.dataclass(frozen=True)
class RowProblem:
    """A record that cannot be used, with the reason.

    Attributes:
        source: The file path it came from.
        line: 1-based line number of the problem.
        reason: Why the record is rejected, in a few words.
        raw: The offending record as it appeared in the source (invalid bytes escaped).
    """

    source: str
    line: int
    reason: str
    raw: str = ""

    def describe(self) -> str:
        """Returns ``file:line: reason``."""
        return f"{self.source}:{self.line}: {self.reason}"

    def to_json(self) -> dict:
        """Returns the problem as a JSON-ready dict (invalid UTF-8 shown as ``\\xNN``)."""
        return {"file": self.source, "line": self.line, "reason": self.reason, "raw": printable(self.raw)}


def has_invalid_utf8(text: str) -> bool:
    """True when ``text`` was decoded with ``surrogateescape`` from invalid UTF-8 bytes."""
    return bool(_SURROGATE.search(text))


def printable(text: str) -> str:
    """Replaces surrogate-escaped invalid bytes by ``\\xNN`` so the text can be written as UTF-8."""
    return _SURROGATE.sub(lambda m: f"\\x{ord(m.group()) - 0xDC00:02x}", text)

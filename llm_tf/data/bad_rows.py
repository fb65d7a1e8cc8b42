"""The bad-row policy: ``fail`` stops at the first bad row, ``skip`` records it and goes on."""

import collections
import json
import os
from typing import IO

from llm_tf import io_utils
from llm_tf.data.rows import RowProblem
from llm_tf.errors import BadRowError, DataError

POLICIES = ("fail", "skip")


class BadRowHandler:
    """Applies a bad-row policy to each problem a reader or task check finds.

    Under ``fail`` the first problem raises :class:`BadRowError` (``file:line: reason``).
    Under ``skip`` each problem is appended to a JSON-lines reject file (file, line, reason,
    raw record) and counted by reason. Use as a context manager: the reject file is written
    atomically, and a ``fail`` raised inside a tf.data pipeline (which TensorFlow wraps in an
    ``OpError``) leaves the block as the original :class:`BadRowError`.

    Args:
        policy: ``fail`` or ``skip``.
        reject_path: Where skipped rows go (required for ``skip``; local or ``gs://``; its
            directory is created when the first row is skipped).

    Example:
        >>> with BadRowHandler("skip", "out/rejected.jsonl") as bad_rows:
        ...     bad_rows.handle(RowProblem("a.tsv", 3, "empty text"))
        >>> bad_rows.count
        1
    """

    def __init__(self, policy: str = "fail", reject_path: str | None = None):
        if policy not in POLICIES:
            raise DataError(f"unknown bad-row policy '{policy}' (expected one of: {', '.join(POLICIES)})")
        if policy == "skip" and not reject_path:
            raise DataError("the skip policy needs a path for the rejected rows")
        self.policy = policy
        self.reject_path = reject_path
        self.count = 0
        self.by_reason: collections.Counter = collections.Counter()
        self.failure: BadRowError | None = None
        self._file: IO[str] | None = None
        self._tmp_path = None

    def __enter__(self) -> "BadRowHandler":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(commit=exc_type is None)
        if self.failure is not None and exc is not None and exc is not self.failure:
            # The failure was raised inside tf.data (from_generator), which wraps it in an
            # OpError; give the caller the one-line BadRowError instead.
            raise self.failure from None

    def handle(self, problem: RowProblem) -> None:
        """Fails on ``problem`` or records it, per the policy.

        Raises:
            BadRowError: Under ``fail``.
        """
        if self.policy == "fail":
            self.failure = BadRowError(problem, hint="use --bad_rows=skip to skip bad rows and write them to a file")
            raise self.failure
        if self._file is None:
            self._open()
        self._file.write(json.dumps(problem.to_json(), ensure_ascii=False) + "\n")
        self.count += 1
        self.by_reason[_reason_kind(problem.reason)] += 1

    def _open(self) -> None:
        self._tmp_path = f"{self.reject_path}.partial-{os.getpid()}"
        if not io_utils.is_remote(self.reject_path):
            os.makedirs(os.path.dirname(os.path.abspath(self.reject_path)), exist_ok=True)
            self._file = open(self._tmp_path, "w", encoding="utf-8")
            return
        import tensorflow as tf

        io_utils.makedirs(self.reject_path.rsplit("/", 1)[0])
        self._file = tf.io.gfile.GFile(self._tmp_path, "w")

    def close(self, commit: bool = True) -> None:
        """Closes the reject file; renames it into place when ``commit``, else removes it."""
        if self._file is None:
            return
        file, self._file = self._file, None
        with io_utils.storage_errors(self.reject_path):
            file.close()  # a remote file is uploaded here
        if commit:
            io_utils.replace(self._tmp_path, self.reject_path)
        else:
            io_utils.remove_file(self._tmp_path)


def _reason_kind(reason: str) -> str:
    """Groups reasons by their kind: 'unknown label '7' in field 'label'' -> 'unknown label'."""
    for sep in (":", " '", " in field", " ("):
        reason = reason.split(sep, 1)[0]
    return reason.strip()
